"""Property tests: arbitrary bytes given to a parser either parse or raise datakit's own error."""
from __future__ import annotations

import gzip

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datakit.errors import DatakitError
from datakit.sources._io import archive as archive_reader
from datakit.sources.common import ErrorPolicy
from datakit.sources.mnist import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from datakit.sources.svhn import read_svhn_mat
from datakit.study.spec import tomllib
from datakit.study.spec import parse_study

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _idx_like():
    """Mostly valid-looking IDX headers followed by random bytes, sometimes gzipped."""
    header = st.builds(lambda m, dims: m.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims),
                       st.sampled_from([IMAGES_MAGIC, LABELS_MAGIC, 0]),
                       st.lists(st.integers(0, 40), min_size=1, max_size=3))
    raw = st.one_of(st.binary(max_size=300), st.builds(bytes.__add__, header, st.binary(max_size=300)))
    return st.tuples(raw, st.booleans())


@FAST
@given(_idx_like())
def test_idx_parser(tmp_path, case):
    data, gz = case
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(data) if gz else data)
    for magic, ndim in ((IMAGES_MAGIC, 3), (LABELS_MAGIC, 1)):
        try:
            read_idx(path, magic, ndim)
        except DatakitError:
            pass


@FAST
@given(st.binary(max_size=600))
def test_mat_parser(tmp_path, data):
    path = tmp_path / "train_32x32.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file".ljust(116, b" ") + bytes(8) + b"\x00\x01IM" + data
                     if data[:1] == b"\x00" else data)
    try:
        read_svhn_mat(path)
    except DatakitError:
        pass


@FAST
@given(st.binary(max_size=3000), st.sampled_from(["", ".gz"]))
def test_tar_parser(tmp_path, data, suffix):
    path = tmp_path / f"EnglishFnt.tar{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    try:
        list(archive_reader.archive_files(path, "English/Fnt", ErrorPolicy("skip"), {}))
    except DatakitError:
        pass


_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
              st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=12)
_KEYS = st.sampled_from(["study", "ingest", "train", "audit", "arm", "compare", "name", "from",
                         "source", "steps", "width", "judge", "factors", "size", "path", "x"])


@FAST
@given(st.dictionaries(_KEYS, st.one_of(_VALUES, st.dictionaries(_KEYS, _VALUES, max_size=4),
                                        st.lists(st.dictionaries(_KEYS, _VALUES, max_size=4),
                                                 max_size=2)), max_size=5))
def test_study_loader_on_any_structure(data):
    try:
        parse_study(data)
    except DatakitError:
        pass


@FAST
@given(st.binary(max_size=400))
def test_study_loader_on_any_bytes(tmp_path, data):
    from datakit.study.spec import load_study
    path = tmp_path / "s.toml"
    path.write_bytes(data)
    try:
        load_study(path)
    except DatakitError:
        pass


def test_a_valid_study_parses():  # control: the loader does accept a good study
    s = parse_study(tomllib.loads('[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a"\nfrom = ["d"]\n'))
    assert [a.name for a in s.arms] == ["a"]
