"""``datakit demo``: the main job on embedded data (no download, no GPU, no network)."""
from __future__ import annotations

import click

from datakit.cli.base import json_option, main, needs_torch, print_json
from datakit.cli.study import echo_verdict_and_report


@main.command("demo")
@click.option("--out", "-o", type=click.Path(), default="demo", show_default=True,
              help="Demo folder; the report is OUT/report.html.")
@click.option("--steps", default=None, type=int, help="Training steps per arm (default 700; more gives cleaner samples).")
@click.option("--device", default="auto", show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]), help="Where training and audit run.")
@click.option("--quick", is_flag=True,
              help="A reduced demo (a few steps, tiny networks) that checks the whole flow in a minute.")
@json_option("an object: out, report")
def demo_cmd(out, steps, device, quick, as_json):
    """Ingest the embedded digits and font renderings, compose a handwritten, a synthetic
    and a mixed training set, train a small ACGAN on each, audit them, write one report.

    Takes about 3 minutes on two CPU cores; a second run reuses what the first computed.

    \b
    Example:
        datakit demo --out demo
        datakit demo --quick --out /tmp/demo
    """
    needs_torch("demo")
    from datakit.demo import DemoConfig, run_demo

    cfg = DemoConfig.quick(out) if quick else DemoConfig(out=out)
    cfg.device = device
    if steps is not None:
        cfg.steps = steps
    result = run_demo(cfg)
    if as_json:
        print_json({"out": str(out), "report": str(result.report)})
    else:
        echo_verdict_and_report(result)
