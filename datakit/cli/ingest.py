"""``datakit ingest SOURCE``: original distribution formats -> manifests."""
from __future__ import annotations

import click

from datakit._core.names import check_name, printable
from datakit.cli.base import json_option, main, manifest_summary, print_json
from datakit.errors import DatakitError
from datakit.manifest.model import Manifest
from datakit.sources.chars74k import ingest_chars74k
from datakit.sources.digits import ingest_digits
from datakit.sources.folder import ingest_folder
from datakit.sources.fonts import ingest_fonts
from datakit.sources.mnist import ingest_mnist
from datakit.sources.svhn import ingest_svhn

OUT_HELP = "Output folder or .parquet path (default: data_manifests/)."
ON_ERROR = click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise",
                        show_default=True,
                        help="raise: stop at the first bad file. skip: ingest the rest and "
                             "list each skipped file with its reason in the sidecar.")
DOWNLOAD = click.option("--download", is_flag=True,
                        help="Fetch the official files into PATH (default: the data home) "
                             "first, checksums verified.")
#: Without PATH a source reads DATA_HOME/<source>/ (see `datakit data-home`).
DATA_PATH = click.argument("path", type=click.Path(), required=False)


def _check_name(ctx, param, value):
    try:
        return None if value is None else check_name(value, "--name")
    except DatakitError as e:
        raise click.BadParameter(str(e)) from None


NAME = click.option("--name", default=None, callback=_check_name,
                    help="Manifest name (default: derived from the source).")
OUT = click.option("--out", "-o", type=click.Path(), default=None, help=OUT_HELP)
JSON = json_option("the written manifest's summary (one object: manifest, images, geometry, "
                   "classes, counts, skipped)")


def split_option(splits: list[str]):
    """``--split`` offering only the splits the source has (MNIST has no 'extra')."""
    return click.option("--split", type=click.Choice([*splits, "all"]), default="all",
                        show_default=True, help="Which official split(s) to ingest.")


@main.group()
def ingest() -> None:
    """Normalise a dataset's original files into a manifest (Parquet + JSON + pixel store).

    Without PATH, mnist, svhn and chars74k read DATA_HOME/<source>/ in the dataset's
    original layout (DATA_HOME: $DATAKIT_DATA, else a per-user folder; `datakit data-home`
    prints it), and --download fetches the files there.

    \b
    Example:
        datakit ingest chars74k --subset GoodImg     # from DATA_HOME/chars74k
        datakit ingest mnist ../shared/data/mnist
        datakit ingest digits        # embedded, no download
    """


def _summary(m: Manifest, as_json: bool = False) -> None:
    if as_json:
        print_json(manifest_summary(m))
        return
    s = m.stats
    g = m.geometry
    click.echo(f"Wrote {m.path} ({len(m)} images, {g.height}x{g.width}x{g.channels})")
    b = s.get("balance", {})
    click.echo("  splits: " + ", ".join(f"{k}={v}" for k, v in s.get("split_counts", {}).items()))
    click.echo("  domains: " + ", ".join(f"{k}={v}" for k, v in s.get("domain_counts", {}).items()))
    click.echo(f"  classes: {len(s.get('class_counts', {}))}, imbalance ratio "
               f"{b.get('imbalance_ratio', float('nan')):.2f}, normalised entropy "
               f"{b.get('normalised_entropy', float('nan')):.3f}")
    if s.get("missing_classes"):
        click.echo("  missing classes: " + " ".join(s["missing_classes"]))
    skipped = m.meta.get("skipped") or []
    if skipped:
        click.echo(f"  skipped {len(skipped)} file(s) (listed in {m.sidecar_path.name}):")
        for item in skipped[:10]:
            click.echo(printable(f"    {item['file']}: {item['reason']}"))


@ingest.command("mnist")
@JSON
@DATA_PATH
@split_option(["train", "test"])
@OUT
@NAME
@ON_ERROR
@DOWNLOAD
def ingest_mnist_cmd(as_json, path, split, out, name, on_error, download):
    """MNIST from its four IDX files (gzipped or not) in PATH (default: DATA_HOME/mnist).

    \b
    Example:
        datakit ingest mnist
        datakit ingest mnist ../shared/data/mnist --split train
    """
    _summary(ingest_mnist(path, split=split, out=out, name=name, on_error=on_error,
                          download=download), as_json)


@ingest.command("svhn")
@JSON
@DATA_PATH
@split_option(["train", "test", "extra"])
@OUT
@NAME
@ON_ERROR
@DOWNLOAD
def ingest_svhn_cmd(as_json, path, split, out, name, on_error, download):
    """SVHN cropped digits from train_32x32.mat / test_32x32.mat / extra_32x32.mat in PATH
    (default: DATA_HOME/svhn).

    \b
    Example:
        datakit ingest svhn --split test
        datakit ingest svhn data/svhn --split test --download
    """
    _summary(ingest_svhn(path, split=split, out=out, name=name, on_error=on_error,
                         download=download), as_json)


@ingest.command("chars74k")
@JSON
@DATA_PATH
@click.option("--subset", required=True,
              type=click.Choice(["GoodImg", "BadImg", "BadImag", "Fnt", "Hnd"], case_sensitive=False),
              help="Which English subset (BadImg and the official spelling BadImag are the same).")
@click.option("--classes", default="all", show_default=True,
              type=click.Choice(["digits", "upper", "lower", "all"]), help="Which classes to keep.")
@click.option("--size", default=32, show_default=True, type=int,
              help="Side of the square store images (aspect kept by padding).")
@click.option("--channels", default=None, type=click.Choice(["1", "3"]),
              help="Store channels (default: 3 for GoodImg/BadImg, 1 for Fnt/Hnd).")
@click.option("--workers", default=None, type=int, help="Decode processes (default: all cores).")
@OUT
@NAME
@ON_ERROR
@DOWNLOAD
def ingest_chars74k_cmd(as_json, path, subset, classes, size, channels, workers, out, name, on_error, download):
    """Chars74K (English) from the extracted tree or the original .tgz archives in PATH
    (default: DATA_HOME/chars74k).

    \b
    Example:
        datakit ingest chars74k --subset GoodImg
        datakit ingest chars74k ../shared/data/chars74k --subset GoodImg
        datakit ingest chars74k ../shared/data/chars74k --subset Fnt --classes digits
    """
    _summary(ingest_chars74k(path, subset=subset, classes=classes, size=size,
                             channels=int(channels) if channels else None, workers=workers,
                             out=out, name=name, on_error=on_error, download=download), as_json)


@ingest.command("folder")
@JSON
@click.argument("root", type=click.Path())
@click.option("--domain", default="wild", show_default=True,
              type=click.Choice(["wild", "synthetic", "handwritten"]),
              help="The kind of images (recorded on every row).")
@click.option("--classes", default=None,
              help="Keep only these class folders, comma-separated, in label order "
                   "(default: every sub-folder, sorted).")
@click.option("--size", default=32, show_default=True, type=int,
              help="Side of the square store images (aspect kept by padding).")
@click.option("--channels", default=None, type=click.Choice(["1", "3"]),
              help="Store channels (default: 3 for wild, 1 for synthetic and handwritten).")
@click.option("--workers", default=None, type=int, help="Decode processes (default: all cores).")
@OUT
@NAME
@ON_ERROR
def ingest_folder_cmd(as_json, root, domain, classes, size, channels, workers, out, name, on_error):
    """Any folder of labelled glyphs: ROOT/<class_name>/<image> (torchvision's ImageFolder
    layout), one class per sub-folder, any image format PIL reads.

    \b
    Example:
        datakit ingest folder my_glyphs --domain handwritten --size 32
        datakit ingest folder scans --classes A,B,C --on-error skip
    """
    _summary(ingest_folder(root, domain=domain, classes=classes, size=size,
                           channels=int(channels) if channels else None, workers=workers,
                           out=out, name=name, on_error=on_error), as_json)


@ingest.command("digits")
@JSON
@click.option("--size", default=32, show_default=True, type=int, help="Side of the store images.")
@OUT
@NAME
def ingest_digits_cmd(as_json, size, out, name):
    """scikit-learn's bundled 8x8 handwritten digits (embedded: no download).

    \b
    Example:
        datakit ingest digits --size 32
    """
    _summary(ingest_digits(size=size, out=out, name=name), as_json)


@ingest.command("fonts")
@JSON
@click.option("--size", default=32, show_default=True, type=int, help="Side of the store images.")
@click.option("--per-class", default=100, show_default=True, type=int,
              help="Images rendered per class.")
@click.option("--classes", default="all", show_default=True,
              type=click.Choice(["digits", "upper", "lower", "all"]), help="Which classes to render.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the jitter.")
@OUT
@NAME
def ingest_fonts_cmd(as_json, size, per_class, classes, seed, out, name):
    """Render the 62 Chars74K classes from the machine's fonts (embedded: no download).

    Uses at least matplotlib's bundled DejaVu, STIX and Computer Modern families, with a
    seeded jitter of size, position, rotation and stroke weight.

    \b
    Example:
        datakit ingest fonts --classes digits --per-class 200
    """
    _summary(ingest_fonts(size=size, per_class=per_class, classes=classes, seed=seed,
                          out=out, name=name), as_json)
