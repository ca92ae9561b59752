"""``datakit label-issues MANIFEST``: rows whose label is most likely wrong (confident learning)."""
from __future__ import annotations

import click

from datakit.cli.base import json_option, main, needs_torch, print_json
from datakit.label_issues import (
    LabelIssuesConfig,
    find_label_issues,
    write_issues_csv,
    write_probabilities,
)
from datakit.manifest.read import read_manifest


@main.command("label-issues")
@click.argument("manifest", type=click.Path())
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="The ranked CSV (default: MANIFEST's folder/<name>.label_issues.csv).")
@click.option("--folds", default=4, show_default=True, type=click.IntRange(min=2),
              help="Out-of-fold rounds: each trains one judge without its fold.")
@click.option("--score", default="self_confidence", show_default=True,
              type=click.Choice(["self_confidence", "normalized_margin"]),
              help="Label-quality score that ranks the candidates (low = suspicious).")
@click.option("--epochs", default=0, show_default=True, type=int,
              help="Epochs per fold (0: about 150,000 image passes with --augment none, "
                   "the judge's rule of about 80,000 otherwise).")
@click.option("--augment", default="none", show_default=True,
              type=click.Choice(["none", "jitter", "judge"]),
              help="How each fold's network trains: none = on the plain images (sure of what "
                   "it reads where a label is wrong); jitter = every image rotated, zoomed and "
                   "shifted on its own; judge = the audit judge's own training.")
@click.option("--device", default="auto", show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]), help="Where the judges train.")
@click.option("--ensemble", default=1, show_default=True, type=click.IntRange(min=1),
              help="Repeat the out-of-fold round over E fold splits and average the probabilities.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=0),
              help="Torch CPU threads while training (0: torch's default; more than 1 mostly "
                   "spins on small networks).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the folds and judges.")
@click.option("--top", default=0, show_default=True, type=click.IntRange(min=0),
              help="Write the K lowest-scored rows whatever the thresholds say (column "
                   "`candidate` marks confident learning's own); 0: the candidates only.")
@click.option("--probs", "probs", type=click.Path(dir_okay=False), default=None,
              help="Also save the N×K out-of-fold probabilities here (.npy, float64) in the "
                   "manifest's table order, one column per class: cleanlab's pred_probs.")
@click.option("--show", default=10, show_default=True, type=click.IntRange(min=0),
              help="Rows printed on stdout.")
@json_option("a summary object: manifest, out, probs, rows, issues, config, "
             "out_of_fold_accuracy, thresholds, top (the first rows)")
def label_issues_cmd(manifest, out, folds, score, epochs, augment, ensemble, device, threads, seed,
                     top, probs, show, as_json):
    """Rank MANIFEST's rows whose label is most likely wrong, most likely first.

    Out-of-fold predicted probabilities (K folds; each fold's network is the judge's,
    trained on the plain images of the other folds), per-class thresholds and the confident
    joint of confident learning; the off-diagonal rows are written to a CSV with columns
    rank, id, row, split, label, class_name, predicted_label, predicted_class_name, score,
    given_label_probability, predicted_probability, candidate. With --top K the CSV holds
    the K rows the model doubts most instead, flagged or not (for reviewing a set that looks
    clean). --probs saves the probabilities themselves, in the manifest's table order.
    Show the rows with thumbnails: datakit stats M --html p.html --label-issues issues.csv.

    \b
    Example:
        datakit label-issues data_manifests/mnist.parquet --out issues.csv
        datakit label-issues goodimg.parquet --folds 5 --score normalized_margin --json
        datakit label-issues mnist-test.parquet --top 100 --probs pred_probs.npy
    """
    needs_torch("label-issues")

    m = read_manifest(manifest)
    cfg = LabelIssuesConfig(folds=folds, score=score, epochs=epochs, seed=seed, device=device,
                            top=top, augment=augment, ensemble=ensemble, threads=threads)
    result = find_label_issues(m, cfg)
    path = write_issues_csv(result, out or m.path.with_name(f"{m.name}.label_issues.csv"))
    probs_path = write_probabilities(result, probs) if probs else None
    if as_json:
        print_json({**result.summary(), "out": path, "probs": probs_path})
        return
    what = (f"the {len(result.issues)} lowest-scored rows ({result.info['candidates']} likely label "
            "issues in all)" if top else f"{len(result.issues)} likely label issues")
    click.echo(f"Wrote {path} ({what} among {len(m)} rows; "
               f"out-of-fold accuracy {result.info['out_of_fold_accuracy']:.3f})")
    if probs_path:
        click.echo(f"Wrote {probs_path} (out-of-fold probabilities, {len(m)}×{len(m.vocabulary)}, "
                   "table order)")
    if not top and result.issues.empty:
        click.echo("No row passed its class threshold. To review the rows the model doubts most "
                   "anyway: --top 20 writes the 20 lowest-scored.")
    for r in result.issues.head(show).itertuples(index=False):
        click.echo(f"  {r.rank:>4}  {r.id}  labelled {r.class_name!r}, looks like "
                   f"{r.predicted_class_name!r}  (score {r.score:.3f})")
