"""``datakit compose MANIFEST... -o OUT.parquet``: controlled training sets from manifests."""
from __future__ import annotations

import click

from datakit.cli.base import json_option, main, manifest_summary, print_json
from datakit.composition.build import compose, rebuild
from datakit.manifest.read import read_manifest


@main.command("compose")
@click.argument("manifests", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="The new manifest's .parquet path (sidecar and pixel store go beside it).")
@click.option("--classes", default=None, help="Keep only digits, upper, lower, or a comma list (e.g. 0,1,A).")
@click.option("--domain", default=None, help="Keep only these domains (comma list: wild,synthetic,handwritten).")
@click.option("--subset", default=None, help="Keep only these subsets (comma list, e.g. GoodImg,Fnt).")
@click.option("--split", default=None, help="Keep only these splits (comma list, e.g. train).")
@click.option("--drop-classes", default=None, help="Remove these classes (comma list).")
@click.option("--dedupe", type=click.Choice(["exact", "near"]), default=None,
              help="Drop exact (same pixels) or near (same perceptual hash) duplicates.")
@click.option("--weights", default=None,
              help="Share of each part by parent name, subset, dataset or domain: a=1,b=3.")
@click.option("--fraction", default=None,
              help="Share of one value of a column, the rest share the remainder: domain=synthetic:0.3.")
@click.option("--skew", default=None, help="Impose a class distribution: zipf:A or step:F (half the classes at F).")
@click.option("--class-counts", default=None, help='Exact images per class: "0=500,1=50".')
@click.option("--max-per-class", default=None, type=int, help="Cap every class at this many images.")
@click.option("--size", default=None, type=int, help="Subsample to this many images.")
@click.option("--stratify/--no-stratify", default=True, show_default=True,
              help="Subsample stratified by class (and part) or uniformly at random.")
@click.option("--holdout", default=None, type=float,
              help="Fraction held out as split 'test' (stratified, duplicates never cross).")
@click.option("--image-size", default=None, type=int, help="Side of the output images (default: the largest).")
@click.option("--channels", default=None, type=click.Choice(["1", "3"]), help="Output channels (default: the most).")
@click.option("--polarity", type=click.Choice(["keep", "dark-on-light", "light-on-dark"]), default="keep",
              show_default=True, help="Invert images so that all share one ink/background polarity.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of every random choice.")
@json_option("the new manifest's summary (one object, as `datakit ingest --json`, plus operations)")
def compose_cmd(manifests, out, channels, as_json, **options):
    """Mix, select, dedupe, skew, subsample and split manifests into a new one.

    Operations run in this order: select, vocabulary, dedupe, mix, skew, subsample,
    split, geometry. The sidecar records the parents, every operation and the seed.

    \b
    Example:
        datakit compose goodimg.parquet fnt.parquet -o mix.parquet \\
            --classes digits --fraction domain=synthetic:0.3 --image-size 32
        datakit compose mnist.parquet -o skewed.parquet --skew step:0.1 --holdout 0.2
    """

    m = compose(list(manifests), out, channels=int(channels) if channels else None, **options)
    if as_json:
        print_json({**manifest_summary(m), "operations": m.meta["operations"]})
        return
    s = m.stats
    g = m.geometry
    click.echo(f"Wrote {m.path} ({len(m)} images, {g.height}x{g.width}x{g.channels})")
    click.echo("  classes: " + ", ".join(f"{k}={v}" for k, v in s["class_counts"].items()))
    click.echo("  domains: " + ", ".join(f"{k}={v}" for k, v in s["domain_counts"].items()))
    click.echo("  splits: " + ", ".join(f"{k}={v}" for k, v in s["split_counts"].items()))
    click.echo("  operations: " + " -> ".join(op["op"] for op in m.meta["operations"]))


@main.command("rebuild")
@click.argument("manifest", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Where to write the re-created manifest (.parquet).")
@click.option("--parent", "parents", multiple=True, type=click.Path(),
              help="A parent's new path, when they have moved (repeat, in the recorded order).")
@json_option("the re-created manifest's summary plus identical (bool: same content checksum)")
def rebuild_cmd(manifest, out, parents, as_json):
    """Re-create a composed manifest from its recorded parents and parameters.

    The parents must have the checksums recorded in the sidecar; the result has the same
    rows and bit-identical pixels.

    \b
    Example:
        datakit rebuild skewed.parquet -o skewed-again.parquet
    """

    m = rebuild(manifest, out, parents=list(parents) or None)
    identical = m.checksum == _checksum(manifest)
    if as_json:
        print_json({**manifest_summary(m), "identical": identical})
        return
    same = "identical to" if identical else "DIFFERENT from"
    click.echo(f"Wrote {m.path} ({len(m)} images), content {same} {manifest}")


def _checksum(path) -> str:
    return read_manifest(path).checksum
