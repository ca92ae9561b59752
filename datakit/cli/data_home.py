"""``datakit data-home``: where the sources look for their files when given no path."""
from __future__ import annotations

import click

from datakit.cli.base import main, print_json
from datakit.sources.home import get_data_home
from datakit.sources.registry import data_home_report


@main.command("data-home")
@click.option("--json", "as_json", is_flag=True,
              help="Print the data home and, per source, its folder and whether its files are there.")
def data_home_cmd(as_json):
    """Print the data home: the folder whose mnist/, svhn/ and chars74k/ subfolders
    `datakit ingest SOURCE` reads when given no PATH (and --download fills).

    It is $DATAKIT_DATA when set, else the platform's per-user data folder
    (~/.local/share/datakit or $XDG_DATA_HOME/datakit on Linux, ~/Library/Application
    Support/datakit on macOS, %LOCALAPPDATA%\\datakit on Windows).

    \b
    Example:
        datakit data-home
        datakit data-home --json
        DATAKIT_DATA=../shared/data datakit ingest chars74k --subset GoodImg
    """

    if as_json:
        print_json(data_home_report())
    else:
        click.echo(str(get_data_home()))
