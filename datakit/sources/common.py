"""What every source shares: the error policy, the row builder and the final write."""
from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from datakit._core.names import check_name, describe_os_error, inside, printable
from datakit.errors import DatakitError, ManifestError, UnknownName
from datakit.manifest.model import Manifest, manifest_paths, pixel_sha256
from datakit.manifest.store import PixelSpill
from datakit.manifest.write import write_manifest, write_manifest_chunks

DEFAULT_OUT = Path("data_manifests")
ON_ERROR = ("raise", "skip")


@dataclass
class ErrorPolicy:
    """``raise`` stops at the first bad file; ``skip`` records it and goes on.

    Every skipped file lands in the sidecar's ``skipped`` list with its reason.
    """

    mode: str = "raise"
    skipped: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in ON_ERROR:
            raise UnknownName(f"Unknown --on-error value {self.mode!r}; use one of: {', '.join(ON_ERROR)}.")

    def handle(self, file: str, error: DatakitError) -> None:
        """Raise ``error`` or record it, according to the policy."""
        if self.mode == "raise":
            raise error
        self.skipped.append({"file": str(file), "reason": without_skip_advice(str(error))})


def without_skip_advice(reason: str) -> str:
    """A reason without its "or pass --on-error skip" advice: the file was skipped already."""
    reason = re.sub(r", ([^,.]+), or pass --on-error skip\.", r" or \1.", reason)  # "A, B, or pass"
    reason = re.sub(r",? or pass --on-error skip\.", ".", reason)
    return re.sub(r" \(or pass --on-error skip to leave it out\)", "", reason)


def build_table(records: list[dict[str, Any]], pixels: np.ndarray) -> pd.DataFrame:
    """Turn per-image records (all manifest columns but ``sha256`` and ``row``) into a table.

    ``records[i]`` describes ``pixels[i]``.
    """
    table = pd.DataFrame.from_records(records)
    table["sha256"] = pixel_sha256(pixels)
    table["row"] = np.arange(len(table), dtype=np.int64)
    return table


def records_in_path_order(rels: list[tuple[str, str, str]], metas: list[tuple[int, int, str]],
                          vocab: list[str], *, dataset: str, subset: str, domain: str,
                          id_of=lambda rel: rel) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Manifest rows of decoded images sorted by relative path, so a folder tree and an
    archive of it give the same manifest, and ``order``: row i's image is decoded image
    ``order[i]`` (feed ``spill.in_order(order)`` to :func:`finish_chunks`).

    Args:
        rels: per image ``(relative path, source, class name)``; metas: ``(width, height, mode)``.
        id_of: the id's last part from the relative path.
    """
    order = sorted(range(len(rels)), key=lambda i: rels[i][0])
    label_of = {c: i for i, c in enumerate(vocab)}
    records = []
    for i in order:
        rel, src, cls = rels[i]
        w, h, mode = metas[i]
        records.append({
            "id": f"{dataset}/{subset}/{id_of(rel)}", "dataset": dataset, "subset": subset,
            "split": "train", "domain": domain, "label": label_of[cls], "class_name": cls,
            "source": src, "orig_width": w, "orig_height": h, "orig_mode": mode})
    return records, np.asarray(order, dtype=np.int64)


class IngestSpill(PixelSpill):
    """The :class:`PixelSpill` of an ingest writing the manifest at ``path`` (beside its
    store), whose write errors (a read-only folder, a full disk) read like :func:`finish`'s."""

    def __init__(self, path: Path, image_shape: tuple[int, int, int]):
        super().__init__(manifest_paths(path)[2], image_shape)
        self.manifest_path = path

    def __enter__(self) -> "IngestSpill":
        with explain_write_errors(self.manifest_path):
            try:
                super().__enter__()
            except BaseException:
                self.__exit__(None, None, None)  # remove the folders it made
                raise
        return self

    def append(self, images: np.ndarray) -> None:
        with explain_write_errors(self.manifest_path):
            super().append(images)


def output_path(out: str | os.PathLike | None, name: str) -> Path:
    """Where a source writes: ``out`` if it names a .parquet file, else ``out/name.parquet``."""
    out = Path(out) if out is not None else DEFAULT_OUT
    if out.suffix == ".parquet":
        check_name(out.name[: -len(".parquet")], "manifest name")
        return out
    check_name(name, "manifest name (--name)")
    return inside(out, out / f"{name}.parquet", "manifest")


def finish(out: str | os.PathLike | None, name: str, records: list[dict[str, Any]],
           pixels: np.ndarray, *, classes: list[str], inputs: list[dict[str, Any]],
           policy: ErrorPolicy, config: dict[str, Any]) -> Manifest:
    """Write the manifest of an ingest (atomically) and return it."""
    table = build_table(records, pixels)
    path = output_path(out, name)
    with explain_write_errors(path):
        return write_manifest(path, table, pixels, _meta(inputs, policy, config), classes=classes)


def finish_chunks(out: str | os.PathLike | None, name: str, records: list[dict[str, Any]],
                  chunks: Iterable[np.ndarray], image_shape: tuple[int, int, int], *,
                  classes: list[str], inputs: list[dict[str, Any]], policy: ErrorPolicy,
                  config: dict[str, Any]) -> Manifest:
    """:func:`finish` for pixels written as they come: ``chunks`` yields the images of
    ``records`` in order (see :func:`datakit.manifest.write_manifest_chunks`)."""
    table = pd.DataFrame.from_records(records)
    path = output_path(out, name)
    with explain_write_errors(path):
        return write_manifest_chunks(path, table, chunks, image_shape,
                                     _meta(inputs, policy, config), classes=classes)


def _meta(inputs: list[dict[str, Any]], policy: ErrorPolicy, config: dict[str, Any]
          ) -> dict[str, Any]:
    return {"inputs": inputs, "skipped": policy.skipped, "config": config, "parents": [],
            "operations": [{"op": "ingest", **config}]}


@contextlib.contextmanager
def explain_write_errors(path: Path) -> Iterator[None]:
    """Turn an OSError of writing the manifest at ``path`` into a ManifestError sentence."""
    try:
        yield
    except OSError as e:
        raise ManifestError(f"Cannot write manifest {printable(str(path))} ({describe_os_error(e)}); "
                            "choose a writable folder with free space (--out).") from e
