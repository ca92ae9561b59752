"""``datakit stats MANIFEST...``: what is in one or several manifests (text, JSON or an HTML page)."""
from __future__ import annotations

import click

from datakit._core.names import printable
from datakit.cli.base import echo_err, json_option, main, print_json
from datakit.label_issues import check_issues_belong, read_issues_csv
from datakit.manifest.read import read_manifest
from datakit.manifest.stats import format_stats_table, manifest_stats


@main.command("stats")
@click.argument("manifests", nargs=-1, required=True, type=click.Path())
@json_option("the statistics: one object for one manifest, a list of objects (in argument "
             "order) for several; each has a 'manifest' key (its path)")
@click.option("--html", "html", type=click.Path(dir_okay=False), default=None,
              help="Also write the self-contained data-audit page to this file.")
@click.option("--label-issues", "label_issues", multiple=True, type=click.Path(dir_okay=False),
              help="A CSV from `datakit label-issues` (one per manifest, in order): the page "
                   "shows its top rows with thumbnails.")
@click.option("--min-count", default=10, show_default=True, type=click.IntRange(min=1),
              help="Classes with fewer images than this are listed as rare.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the example images on the page.")
def stats_cmd(manifests, as_json, html, label_issues, min_count, seed):
    """Counts per class, subset, domain and split; balance; sizes and intensities;
    duplicates and leakage between splits. Several manifests print side by side.

    \b
    Example:
        datakit stats data_manifests/mnist.parquet
        datakit stats a.parquet b.parquet --html audit.html
        datakit stats mnist.parquet --json --min-count 100
        datakit stats mnist.parquet --html audit.html --label-issues issues.csv
    """

    if label_issues and not html:
        raise click.UsageError("--label-issues is shown on the page: pass --html too.")
    if len(label_issues) > len(manifests):
        raise click.UsageError(f"{len(label_issues)} --label-issues files for {len(manifests)} "
                               "manifest(s): give at most one per manifest, in the same order.")
    opened = [read_manifest(p) for p in manifests]
    if label_issues:
        tables = [read_issues_csv(p) for p in label_issues]
        for m, t in zip(opened, tables):
            check_issues_belong(m, t)
    stats = [{"manifest": str(m.path), **manifest_stats(m, low_count=min_count)} for m in opened]
    if as_json:
        print_json(stats[0] if len(stats) == 1 else stats)
    else:
        # Class names are data: their control and bidi characters are shown escaped, so a
        # name cannot move the cursor, clear the screen or reorder the table on a terminal.
        table = format_stats_table(stats, [m.name for m in opened])
        click.echo("\n".join(printable(line) for line in table.split("\n")))
    if html:
        from datakit.report.dataset import render_dataset_report  # matplotlib: only when a page is drawn
        path = render_dataset_report(opened, html, low_count=min_count, seed=seed,
                                     label_issues=tables if label_issues else ())
        if as_json:
            echo_err(f"Wrote {path}")
        else:
            click.echo(f"Wrote {path}")
