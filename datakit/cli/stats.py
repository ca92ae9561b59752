"""``datakit stats MANIFEST...``: what is in one or several manifests (text, JSON or an HTML page)."""
from __future__ import annotations

import click

from datakit.cli.base import main, print_json


@main.command("stats")
@click.argument("manifests", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON (one object per manifest).")
@click.option("--html", "html", type=click.Path(dir_okay=False), default=None,
              help="Also write the self-contained data-audit page to this file.")
@click.option("--min-count", default=10, show_default=True, type=click.IntRange(min=1),
              help="Classes with fewer images than this are listed as rare.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the example images on the page.")
def stats_cmd(manifests, as_json, html, min_count, seed):
    """Counts per class, subset, domain and split; balance; sizes and intensities;
    duplicates and leakage between splits. Several manifests print side by side.

    \b
    Example:
        datakit stats data_manifests/mnist.parquet
        datakit stats a.parquet b.parquet --html audit.html
        datakit stats mnist.parquet --json --min-count 100
    """
    from datakit.manifest import read_manifest
    from datakit.stats import format_stats_table, manifest_stats

    opened = [read_manifest(p) for p in manifests]
    stats = [manifest_stats(m, low_count=min_count) for m in opened]
    if as_json:
        # one manifest: its statistics; several: keyed by path (names may repeat across folders)
        print_json({str(m.path): s for m, s in zip(opened, stats)} if len(opened) > 1 else stats[0])
    else:
        click.echo(format_stats_table(stats, [m.name for m in opened]))
    if html:
        from datakit.report.dataset import render_dataset_report
        path = render_dataset_report(opened, html, low_count=min_count, seed=seed)
        click.echo(f"Wrote {path}", err=as_json)
