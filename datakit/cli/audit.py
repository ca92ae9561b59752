"""``datakit audit RUN_DIR...``: audit trained runs and write one self-contained HTML report."""
from __future__ import annotations

import click

from datakit.cli.base import json_option, main, needs_torch, print_json


@main.command("audit")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", type=click.Path(), default=None,
              help="The HTML report (default: RUN_DIR/audit/report.html for one run, "
                   "./audit_report.html for several).")
@json_option("the audit object (audit.json; DESIGN.md) for one run, a list of them for several")
@click.option("--reuse", is_flag=True,
              help="Keep an existing audit/audit.json that is newer than generated.npz.")
@click.option("--device", default="auto", show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]), help="Where the judge runs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the audit's sampling.")
@click.option("--title", default=None, help="Heading of the report.")
@click.option("--judge-manifest", type=click.Path(), default=None,
              help="Train one judge on this manifest and measure every run with it, so runs "
                   "of different training sets share one feature space and can be ranked.")
@click.option("--reference-manifest", type=click.Path(), default=None,
              help="Measure quality against this manifest's real images (its training split as "
                   "the reference, its held-out split for the floors) instead of each run's own; "
                   "memorisation and class shares still use each run's own training set.")
@click.option("--cas/--no-cas", default=True, show_default=True,
              help="Train the CAS classifier on the samples and test it on real images: on a CPU "
                   "about half of an audit's time; --no-cas leaves CAS out of audit.json.")
def audit_cmd(run_dirs, out, as_json, reuse, device, seed, title, judge_manifest, reference_manifest, cas):
    """Audit run directories (judge network, quality, per-class collapse, bias amplification,
    memorisation) and write one HTML report over all of them.

    Each run's numbers go to RUN_DIR/audit/audit.json; the report opens from disk (figures
    inline, no network) and starts with the verdict. Each run's verdict line is also printed
    on stdout, before the report's path.

    \b
    Example:
        datakit audit runs/mnist_acgan
        datakit audit runs/goodimg runs/fnt --out compare.html
        datakit audit runs/goodimg runs/fnt --judge-manifest mix.parquet
        datakit audit runs/mnist_acgan --json > audit.json
    """
    needs_torch("audit")
    from datakit.audit import AuditConfig
    from datakit.report.html import audit_and_report

    config = AuditConfig(device=device, seed=seed, judge_manifest=judge_manifest,
                         reference_manifest=reference_manifest, cas=cas)
    path, audits = audit_and_report(list(run_dirs), out=out, config=config, reuse=reuse, title=title)
    if as_json:
        dicts = [a.to_dict() for a in audits]
        print_json(dicts[0] if len(dicts) == 1 else dicts)
    else:
        # the verdict's first line per run, so a terminal shows the answer without the page
        for run_dir, audit in zip(run_dirs, audits):
            click.echo(f"{run_dir}: {audit.verdict.sentence}")
        click.echo(f"Report: {path}")
