"""The ``datakit`` click group and the pieces every command shares.

The CLI is a thin layer: a command parses options, calls one library function, prints.
Library errors (:class:`datakit.errors.DatakitError`) become ``Error: ...`` lines, never tracebacks.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import click

from datakit._core.names import describe_os_error, printable
from datakit._core.optional import require_torch
from datakit._core.version import __version__
from datakit.errors import DatakitError
from datakit.sources.home import get_data_home


#: Options of ``datakit`` itself, which a user may type after the command by habit.
GROUP_OPTIONS = ("-v", "--verbose", "-q", "--quiet")


class DatakitGroup(click.Group):
    """A click group that turns library errors into clean ``Error: ...`` messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatakitError as e:
            raise click.ClickException(printable(str(e))) from e
        except OSError as e:  # read-only folder, disk full, a file where a folder should be...
            raise click.ClickException(f"{describe_os_error(e)}. Check the path and that it is "
                                       "writable, with free space.") from e
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        except click.NoSuchOption as e:  # `datakit ingest digits -q`: say where it belongs
            if e.option_name in GROUP_OPTIONS and e.ctx is not None:
                program = e.ctx.find_root().command_path       # datakit, or python -m datakit
                rest = e.ctx.command_path[len(program):].strip()
                e.message += (f" {e.option_name} is an option of {program} itself and goes before "
                              f"the command: {program} {e.option_name} {rest} ...")
            raise

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The resolved data home, so `datakit --help` tells where sources look for files.
        super().format_help_text(ctx, formatter)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(f"Data home: {get_data_home()} (set DATAKIT_DATA to change it; "
                                 "`datakit data-home --json` lists what is there).")


@click.group(cls=DatakitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="datakit")
@click.option("-v", "--verbose", count=True, help="More messages on stderr (-vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(verbose: int = 0, quiet: bool = False) -> None:
    """datakit: measure how the make-up of a character-image training set shapes
    what a GAN trained on it produces.

    Messages go to stderr through the `datakit` logger (-v for more, -q for fewer);
    results go to stdout (one JSON document with --json).

    \b
    The flow:  ingest -> compose -> train -> audit
    Example (embedded digits, no download; `datakit demo` does all of it):
        datakit ingest digits
        datakit stats data_manifests/digits.parquet
        datakit train data_manifests/digits.parquet --out runs/digits --steps 500
        datakit audit runs/digits
        datakit -q stats data_manifests/digits.parquet --json
    With real data, e.g.:
        datakit ingest chars74k --subset GoodImg
    """
    setup_logging(verbose, quiet)


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* sys.stderr (CliRunner and pytest swap it per call)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Send the ``datakit`` logger's messages to stderr: INFO by default, DEBUG with -v -v,
    WARNING with -q (or when DATAKIT_QUIET=1)."""
    if quiet or os.environ.get("DATAKIT_QUIET") in ("1", "true"):
        level = logging.WARNING
    else:
        level = logging.DEBUG if verbose >= 2 else logging.INFO
    logger = logging.getLogger("datakit")
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False


def json_option(shape: str):
    """The ``--json`` flag every command takes; ``shape`` says what it prints."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {shape} as JSON on stdout.")


def manifest_summary(m) -> dict[str, Any]:
    """The JSON object of a written manifest (ingest, compose, rebuild, export print it)."""
    s = m.stats
    return {"manifest": str(m.path), "name": m.name, "images": len(m),
            "geometry": m.geometry.to_dict(), "checksum": m.checksum,
            "classes": m.vocabulary, "class_counts": s.get("class_counts", {}),
            "split_counts": s.get("split_counts", {}), "domain_counts": s.get("domain_counts", {}),
            "skipped": m.meta.get("skipped") or []}


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    click.echo(json.dumps(obj, indent=2, default=str))


def echo_err(message: str) -> None:
    """A message for the user, through the ``datakit`` logger (stderr)."""
    logging.getLogger("datakit").info(message)


def needs_torch(command: str) -> None:
    """Stop with ``Error: datakit COMMAND needs PyTorch: pip install 'datakit[train]'``."""
    require_torch(f"datakit {command}")


