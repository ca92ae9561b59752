"""The ``datakit`` click group and the pieces every command shares.

The CLI is a thin layer: a command parses options, calls one library function, prints.
Library errors (:class:`datakit.errors.DatakitError`) become ``Error: ...`` lines, never tracebacks.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from datakit import __version__
from datakit.errors import DatakitError
from datakit.names import describe_os_error, printable


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

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The resolved data home, so `datakit --help` tells where sources look for files.
        super().format_help_text(ctx, formatter)
        from datakit.data_home import get_data_home
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(f"Data home: {get_data_home()} (set DATAKIT_DATA to change it; "
                                 "`datakit data-home --json` lists what is there).")


@click.group(cls=DatakitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="datakit")
def main() -> None:
    """datakit: measure how the make-up of a character-image training set shapes
    what a GAN trained on it produces.

    \b
    The flow:  ingest -> compose -> train -> audit
    Example:
        datakit ingest chars74k --subset GoodImg
        datakit audit run_dir/
        datakit ingest digits
        datakit stats data_manifests/digits.parquet
    """


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    click.echo(json.dumps(obj, indent=2, default=str))


def out_option(default_help: str):
    return click.option("--out", "-o", type=click.Path(), default=None, help=default_help)


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def is_tty() -> bool:
    return sys.stdout.isatty()
