"""Real-image values reused across audits (datakit.audit.reuse): a second run of the same
manifest reuses the judge's embeddings, k-NN passes and floor tests' held-out sides, and its
audit.json is the same to the last digit as one computed afresh."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from datakit.audit import AuditConfig, audit_run, reuse
from datakit.audit.stats import floors
from datakit.audit.stats.modes import ModeModel, fit_modes, recall_statistic
from datakit.judge import metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A judge cache of the test's own, and no value left in memory by earlier tests."""
    monkeypatch.setenv("DATAKIT_CACHE", str(tmp_path / "cache"))
    reuse.clear_memory()
    yield tmp_path / "cache"
    reuse.clear_memory()


def _run(path, manifest, seed):
    """A run directory whose 'generated' images are held-out digits, shifted by a seeded pixel."""
    test = manifest.table[manifest.table["split"] == "test"]
    images = manifest.images(test["row"].to_numpy())
    images = np.roll(images, np.random.default_rng(seed).integers(-1, 2, 2), axis=(1, 2))
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({
        "manifest": str(manifest.path), "manifest_checksum": manifest.checksum, "model": "acgan",
        "conditional": True}))
    np.savez(path / "generated.npz", images=images, labels=test["label"].to_numpy())
    return path


def _numbers(audit: dict) -> dict:
    """audit.json without what may differ between two audits of one run: times and paths."""
    out = json.loads(json.dumps(audit))
    for key in ("timing", "run"):
        out.pop(key)
    out["judge"].pop("cached", None)
    out["judge"].pop("train_seconds", None)
    if out["cas"]:
        out["cas"].pop("train_seconds", None)
    return out


def test_a_second_run_of_a_manifest_reuses_real_values_and_its_numbers_are_unchanged(
        digits_manifest, tmp_path, cache):
    cfg = AuditConfig(bootstrap=20, kid_subsets=5, cas=False)
    audit_run(_run(tmp_path / "first", digits_manifest, seed=0), cfg)
    stored = sorted(p.name for p in reuse.reuse_dir().glob("*.npz"))
    assert len(stored) > 20   # embeddings, k-NN passes, modes, the held-out sides of floor tests
    second = _run(tmp_path / "second", digits_manifest, seed=1)
    reuse.clear_memory()
    reused = audit_run(second, cfg)
    assert sorted(p.name for p in reuse.reuse_dir().glob("*.npz")) == stored   # nothing computed again

    reuse.clear_memory()
    shutil.rmtree(reuse.reuse_dir())
    fresh = audit_run(second, cfg)
    assert _numbers(reused) == _numbers(fresh)


def test_a_damaged_stored_value_is_computed_again(digits_manifest, tmp_path, cache):
    cfg = AuditConfig(bootstrap=10, kid_subsets=5, cas=False)
    run = _run(tmp_path / "run", digits_manifest, seed=0)
    first = audit_run(run, cfg)
    for p in reuse.reuse_dir().glob("*.npz"):
        p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])   # truncated
    reuse.clear_memory()
    assert _numbers(audit_run(run, cfg)) == _numbers(first)


def test_without_the_cache_nothing_is_written(digits_manifest, tmp_path, cache):
    audit_run(_run(tmp_path / "run", digits_manifest, seed=0),
              AuditConfig(bootstrap=5, kid_subsets=5, cas=False, use_cache=False))
    assert not list(reuse.reuse_dir().glob("*.npz"))


def test_values_come_back_as_they_were_computed(cache):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(40, 4))
    on_disk = reuse.Reuse(disk=True)
    cases = [
        (metrics.neighbour_relations, (real, fake), {"k": 3}, metrics.NeighbourRelations),
        (metrics.nearest_neighbours, (real, fake), {}, tuple),
        (metrics.kid, (real, fake), {"subset_size": 20, "subsets": 4}, dict),
        (metrics.mean_pairwise_distance, (real,), {}, float),
        (fit_modes, (real,), {"seed": 0}, ModeModel),
        (fit_modes, (real[:3],), {"seed": 0}, ModeModel),   # too few images to cluster: None
    ]
    for fn, args, kwargs, kind in cases:
        computed = on_disk(fn, *args, kind=kind, **kwargs)
        reuse.clear_memory()
        read = on_disk(fn, *args, kind=kind, **kwargs)    # from disk this time
        assert type(read) is type(computed)
        if computed is None:
            continue
        if isinstance(computed, tuple):
            for a, b in zip(computed, read):
                np.testing.assert_array_equal(a, b)
        elif isinstance(computed, (dict, float)):
            assert read == computed
        else:
            for name, value in vars(computed).items():
                np.testing.assert_array_equal(getattr(read, name), value, err_msg=name)


def test_a_key_changes_with_content_shape_and_type():
    a = np.arange(6, dtype=np.float64)
    keys = {reuse.key_of("f", a), reuse.key_of("f", a.reshape(2, 3)), reuse.key_of("f", a.astype(np.float32)),
            reuse.key_of("f", a + 1e-12), reuse.key_of("g", a), reuse.key_of("f", a, 1), reuse.key_of("f", a, 1.0)}
    assert len(keys) == 7
    assert reuse.key_of("f", a.copy(), {"k": 5}) == reuse.key_of("f", a, {"k": 5})


def test_a_floor_test_with_its_held_out_side_reused_is_the_same_test():
    rng = np.random.default_rng(1)
    gen, held = rng.normal(size=120), rng.normal(0.3, 1, size=90)
    stats = dict(n_gen=len(gen), n_held=len(held), better="lower", min_effect=0.1, replicates=50, seed=3)
    plain = floors.floor_test(lambda i: gen[i].mean(), lambda i: held[i].mean(), **stats)
    calls = []
    store: dict = {}

    def held_memo(h, draws, compute):
        calls.append(1)
        key = (h.tobytes(), draws.tobytes())
        if key not in store:
            store[key] = compute()
        return store[key]
    first = floors.floor_test(lambda i: gen[i].mean(), lambda i: held[i].mean(), held_memo=held_memo, **stats)
    again = floors.floor_test(lambda i: gen[i].mean(), lambda i: 1 / 0, held_memo=held_memo, **stats)
    assert len(calls) == 2 and len(store) == 1    # the second test never evaluated its held-out side
    for test in (first, again):
        assert test[0] == plain[0]
        np.testing.assert_array_equal(test[1], plain[1])


@pytest.mark.parametrize("k", [1, 3, 5])
def test_recall_from_neighbour_order_equals_recall_from_sorted_distances(monkeypatch, k):
    """recall_statistic finds each resample's k-NN radii from a neighbour order kept once;
    with the order switched off (MAX_ORDERED = 0) it sorts each resample's distances: the
    two agree exactly, repeated samples and all."""
    from datakit.audit.stats import modes
    rng = np.random.default_rng(k)
    real = rng.normal(size=(80, 3))
    samples = np.vstack([rng.normal(size=(30, 3)), np.repeat(rng.normal(size=(2, 3)), 10, axis=0)])
    ordered = recall_statistic(real, samples, k)
    monkeypatch.setattr(modes, "MAX_ORDERED", 0)
    sorted_ = recall_statistic(real, samples, k)
    for _ in range(30):
        index = rng.integers(0, len(samples), len(samples))
        assert ordered(index) == sorted_(index)


def test_the_disk_keeps_the_most_recently_used_values(cache, monkeypatch):
    monkeypatch.setattr(reuse, "DISK_ENTRIES", 3)
    on_disk = reuse.Reuse(disk=True)
    for i in range(5):
        on_disk(np.sort, np.arange(4) + i)
    assert len(list(reuse.reuse_dir().glob("*.npz"))) == 3
