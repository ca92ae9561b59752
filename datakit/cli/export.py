"""``datakit export MANIFEST --format hf|imagefolder --out DIR``: hand a manifest to other tools."""
from __future__ import annotations

import click

from datakit.cli.base import json_option, main, print_json
from datakit.manifest.export import export
from datakit.manifest.read import read_manifest


@main.command("export")
@click.argument("manifest", type=click.Path())
@click.option("--format", "fmt", required=True, type=click.Choice(["hf", "imagefolder"]),
              help="hf: a Hugging Face DatasetDict folder (datasets.load_from_disk); "
                   "imagefolder: DIR/<split>/<class>/<id>.png.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="The folder to write (must not exist, unless --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
@json_option("an object: out, format, manifest, splits (rows per split), classes")
def export_cmd(manifest, fmt, out, overwrite, as_json):
    """Export MANIFEST as a Hugging Face dataset or an ImageFolder tree.

    hf: one split per manifest split, features image (H×W for grey stores), label
    (ClassLabel named by the manifest's classes), id, domain, subset. imagefolder: one
    PNG per row; unsafe class names are escaped and listed in DIR/classes.json.

    \b
    Example:
        datakit export data_manifests/mnist.parquet --format hf --out mnist_hf
        datakit export mix.parquet --format imagefolder --out mix_tree
    """

    result = export(read_manifest(manifest), out, fmt, overwrite=overwrite)
    if as_json:
        print_json(result)
    else:
        splits = ", ".join(f"{k}={v}" for k, v in result["splits"].items())
        click.echo(f"Wrote {result['out']} ({fmt}; {splits})")
