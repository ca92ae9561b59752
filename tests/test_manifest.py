import json

import numpy as np
import pytest

from datakit.errors import ManifestError
from datakit.manifest.model import COLUMNS
from datakit.manifest.read import read_manifest


def test_digits_manifest_round_trips(digits_manifest):
    m = read_manifest(digits_manifest.path)
    assert len(m) == 1797
    assert m.geometry.shape == (32, 32, 1)
    assert list(m.table.columns[: len(COLUMNS)]) == COLUMNS
    assert m.class_names() == [str(d) for d in range(10)]
    assert m.pixels.shape == (1797, 32, 32, 1) and m.pixels.dtype == np.uint8
    assert m.stats["split_counts"] == {"test": 359, "train": 1438}
    assert m.checksum == digits_manifest.checksum


def test_missing_manifest_names_the_file(tmp_path):
    with pytest.raises(ManifestError, match=r"Manifest not found: .*nothing\.parquet"):
        read_manifest(tmp_path / "nothing.parquet")


def test_mismatched_sidecar_is_refused(make_manifest):
    m = make_manifest({"a": 3, "b": 2})
    meta = json.loads(m.sidecar_path.read_text())
    meta["rows"] = 99
    m.sidecar_path.write_text(json.dumps(meta))
    with pytest.raises(ManifestError, match="has 5 rows but its sidecar"):
        read_manifest(m.path)


def test_failed_write_leaves_nothing(tmp_path, make_manifest):
    m = make_manifest({"a": 2})
    from datakit.manifest.write import write_manifest
    bad = m.table.copy()
    bad["domain"] = "moon"
    with pytest.raises(ManifestError, match="Unknown domain"):
        write_manifest(tmp_path / "bad.parquet", bad, np.asarray(m.pixels))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("bad", ".bad"))) == []
