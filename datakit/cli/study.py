"""``datakit study FILE.toml``: run an audit study (every arm ingested, composed, trained, audited)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from datakit.cli.base import json_option, main, needs_torch, print_json

if TYPE_CHECKING:
    from datakit.study.runner import StudyResult


@main.command("study")
@click.argument("study_file", type=click.Path())
@click.option("--budget", default=1.0, show_default=True, type=float,
              help="Multiply every arm's training steps by this (e.g. 0.05 on a CPU).")
@click.option("--device", default=None, type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where training and audit run (default: the study file's, else auto).")
@click.option("--out", "-o", type=click.Path(), default=None,
              help="Study folder (default: studies/<name>); report.html and study.json go there.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Replace a training setting for every arm (repeatable), e.g. --set width=16; "
                   "audit settings as audit.NAME, e.g. --set audit.cas=false.")
@click.option("--executor", default=None, type=click.Choice(["local", "ray"]),
              help="Where the runs go: this machine (local), or one Ray task per run on the "
                   "cluster at RAY_ADDRESS, else a local Ray (default: [study] executor, else local).")
@click.option("--jobs", "-j", default=None, type=int,
              help="Runs at once under the local executor, each with its share of the cores "
                   "(default: [study] jobs, else 1).")
@click.option("--threads", default=None, type=int,
              help="Torch CPU threads per run, and CPUs per Ray task (default: the cores "
                   "divided by --jobs; 1 under Ray).")
@json_option("an object: study (folder), report, study_json, runs ({arm: run_dir})")
def study_cmd(study_file, budget, device, out, overrides, executor, jobs, threads, as_json):
    """Run an audit study: ingest -> compose -> train -> audit for every arm, then one
    comparison report. Anything already computed in the study folder is reused.

    An ingest without `path` reads the data home (see `datakit data-home`); a `path` may
    use environment variables (e.g. "${DATAKIT_DATA}/mnist") or be relative to the file.

    \b
    Example:
        DATAKIT_DATA=../shared/data datakit study audits/mnist_size.toml --budget 0.05
        datakit study audits/chars74k_composition.toml --device cuda
        datakit study audits/class_skew.toml --budget 0.05 --set width=16
        datakit study audits/mnist_size.toml --jobs 4
        RAY_ADDRESS=head:6379 datakit study audits/mnist_size.toml --executor ray --out /nfs/s
    """
    needs_torch("study")
    from datakit.study.arms import check_budget
    from datakit.study.runner import run_study
    from datakit.study.spec import load_study, parse_overrides

    check_budget(budget)
    result = run_study(load_study(study_file), out=out, budget=budget, device=device,
                       overrides=parse_overrides(overrides), executor=executor, jobs=jobs,
                       threads=threads)
    if as_json:
        report = Path(result.report)
        print_json({"study": str(report.parent), "report": str(report),
                    "study_json": str(result.summary),
                    "runs": {arm: str(d) for arm, d in result.runs.items()}})
        return
    for arm, run_dir in result.runs.items():
        click.echo(f"  {arm}: {run_dir}")
    echo_verdict_and_report(result)


def echo_verdict_and_report(result: "StudyResult") -> None:
    """A study's verdict (study.json's sentences) and its report's path, on stdout: a terminal
    shows the answer without opening the page."""
    click.echo("Verdict:")
    for sentence in json.loads(Path(result.summary).read_text())["verdict"]:
        click.echo(f"  {sentence}")
    click.echo(f"Report: {result.report}")
