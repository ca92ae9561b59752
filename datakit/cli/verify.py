"""``datakit verify MANIFEST...``: recompute a manifest's checksums and say what differs."""
from __future__ import annotations

import click

from datakit._core.names import printable
from datakit.cli.base import json_option, main, print_json
from datakit.errors import ManifestError
from datakit.manifest.model import manifest_paths
from datakit.manifest.verify import verify_manifest


@main.command("verify")
@click.argument("manifests", nargs=-1, required=True, type=click.Path())
@json_option("one object per manifest (a list for several): manifest, ok, rows, problems")
def verify_cmd(manifests, as_json):
    """Recompute the sha256 of every image's pixels and the table and content checksums
    recorded in the sidecar; exit non-zero naming what differs.

    \b
    Example:
        datakit verify data_manifests/mnist.parquet
    """

    failed, objects = [], []
    for path in manifests:
        result = verify_manifest(path)
        objects.append({"manifest": printable(str(result.path)), "ok": bool(result.ok),
                        "rows": result.rows, "problems": [printable(p) for p in result.problems]})
        if not result.ok:
            failed.append(result)
        if as_json:
            continue
        if result.ok:
            click.echo(f"OK {printable(str(result.path))}: {result.rows} rows, checksums match")
        else:
            click.echo(f"FAILED {printable(str(result.path))}:", err=True)
            for p in result.problems:
                click.echo(f"  {printable(p)}", err=True)
    if as_json:
        print_json(objects[0] if len(objects) == 1 else objects)
    if failed:
        raise ManifestError(f"{len(failed)} of {len(manifests)} manifest(s) failed verification; "
                            + _what_next(failed))


def _what_next(failed) -> str:
    """Re-create from the sidecar's command, or, with no sidecar, say what is missing."""
    lost = []
    for r in failed:
        sidecar = manifest_paths(r.path)[1]
        shown = printable(str(r.path))
        if r.path.is_dir():
            lost.append(f"{shown} is a folder, not a manifest")
        elif not sidecar.exists():
            lost.append(f"{shown} has no sidecar {printable(sidecar.name)}")
    if not lost:
        return "re-create them with the command in their sidecar."
    text = ("; ".join(lost) + ". A manifest is a .parquet file with its .json sidecar, written by "
            "`datakit ingest` or `datakit compose`: pass one, or re-create it with them.")
    if len(lost) < len(failed):
        text = "re-create the others with the command in their sidecar; " + text
    return text
