"""Manifest integrity and safe replacement: read invariants, verify, atomic switch, writer lock."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from datakit.cli import main
from datakit.errors import BadName, ManifestError
from datakit.manifest.model import table_checksum
from datakit.manifest.read import read_manifest
from datakit.manifest.switch import writer_lock
from datakit.manifest.write import write_manifest

ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# -- read invariants ---------------------------------------------------------------------

def test_healthy_manifest_reads(make_manifest):
    m = make_manifest({"0": 6, "1": 6})
    assert len(read_manifest(m.path)) == 12  # control: no invariant fires on a good one


def test_swapped_store_of_same_shape_is_refused(make_manifest):
    a = make_manifest({"0": 6, "1": 6}, name="a", seed=0)
    b = make_manifest({"0": 6, "1": 6}, name="b", seed=1)
    os.replace(b.pixels_path, a.pixels_path)
    with pytest.raises(ManifestError, match="its pixel store does not hold the images its table "
                                            r"describes \(table row 0 differs\)"):
        read_manifest(a.path)


def test_store_of_another_size_is_refused(make_manifest):
    a = make_manifest({"0": 6, "1": 6}, name="a", size=8)
    b = make_manifest({"0": 30, "1": 30}, name="b", size=16)
    os.replace(b.pixels_path, a.pixels_path)
    with pytest.raises(ManifestError) as e:
        read_manifest(a.path)
    assert "holds uint8 (60, 16, 16, 1) but the sidecar says uint8 (12, 8, 8, 1)" in str(e.value)


def test_edited_labels_are_refused(make_manifest):
    m = make_manifest({"0": 6, "1": 6})
    t = pd.read_parquet(m.path)
    t.loc[0, "label"] = 1
    t.to_parquet(m.path, index=False)
    with pytest.raises(ManifestError, match="its table was changed after it was written"):
        read_manifest(m.path)


def test_row_out_of_range_is_a_manifest_error(make_manifest, tmp_path):
    m = make_manifest({"0": 6, "1": 6})
    t = pd.read_parquet(m.path)
    t.loc[3, "row"] = 999
    t.to_parquet(m.path, index=False)
    meta = json.loads(m.sidecar_path.read_text())
    meta["table_checksum"] = table_checksum(t)  # a forged sidecar: the range check still holds
    m.sidecar_path.write_text(json.dumps(meta))
    with pytest.raises(ManifestError, match=r"its `row` column points outside the pixel store \(0..11\)"):
        read_manifest(m.path)
    r = CliRunner().invoke(main, ["stats", str(m.path)])
    assert r.exit_code == 1 and r.output.startswith(f"Error: Manifest {m.path}: its `row` column")


def test_a_sidecar_without_table_checksum_is_refused(make_manifest):
    m = make_manifest({"0": 6, "1": 6})
    meta = json.loads(m.sidecar_path.read_text())
    meta.pop("table_checksum")  # an edited table would otherwise pass every read
    m.sidecar_path.write_text(json.dumps(meta))
    r = CliRunner().invoke(main, ["stats", str(m.path)])
    assert r.exit_code == 1
    assert r.output == (f"Error: Manifest {m.path}: its sidecar toy.json records no "
                        "table_checksum, so its table cannot be checked. Re-create the manifest "
                        "with `datakit ingest` or `datakit compose`.\n")
    r = CliRunner().invoke(main, ["verify", str(m.path)])
    assert r.exit_code == 1 and "records no table_checksum" in r.output


# -- a changed pixel is refused by every reader that reads every pixel ---------------------

def _change_one_byte_off_the_spot_check(m) -> int:
    """Flip one byte of table row 1 (not among the rows every read spot-checks); its position."""
    assert len(m) == 40  # the spot check reads table rows 0, 3, 5, ... of 40: not row 1
    px = np.load(m.pixels_path, mmap_mode="r+")
    px[int(m.table["row"].iloc[1]), 0, 0, 0] ^= 1
    px.flush()
    del px
    return 1


def _changed_row_error(m) -> str:
    return (f"Error: Manifest {m.path}: the pixels of row {m.table['id'].iloc[1]!r} differ "
            "from the sha256 the row records, so its pixel store was changed after it was "
            f"written. Run `datakit verify {m.path}` to see every changed row, and re-create "
            "the manifest.\n")


def test_compose_refuses_a_changed_pixel_instead_of_laundering_it(make_manifest, tmp_path):
    m = make_manifest({"0": 20, "1": 20})
    _change_one_byte_off_the_spot_check(m)
    assert len(read_manifest(m.path)) == 40  # the read's spot check misses it
    r = CliRunner().invoke(main, ["compose", str(m.path), "-o", str(tmp_path / "c.parquet")])
    assert r.exit_code == 1
    assert r.output == _changed_row_error(m)
    assert not (tmp_path / "c.parquet").exists() and not (tmp_path / "c.json").exists()


@pytest.mark.parametrize("fmt", ["hf", "imagefolder"])
def test_export_refuses_a_changed_pixel(make_manifest, tmp_path, fmt):
    m = make_manifest({"0": 20, "1": 20})
    _change_one_byte_off_the_spot_check(m)
    r = CliRunner().invoke(main, ["export", str(m.path), "--format", fmt, "--out",
                                  str(tmp_path / "e")])
    assert r.exit_code == 1
    assert r.output == _changed_row_error(m)
    assert not (tmp_path / "e").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".e")] == []


def test_label_issues_refuses_a_changed_pixel_before_training(make_manifest):
    from datakit.label_issues import LabelIssuesConfig, find_label_issues
    m = make_manifest({"0": 20, "1": 20})
    _change_one_byte_off_the_spot_check(m)
    with pytest.raises(ManifestError) as e:
        find_label_issues(read_manifest(m.path), LabelIssuesConfig(device="cpu"))
    assert f"Error: {e.value}\n" == _changed_row_error(m)


# -- verify ------------------------------------------------------------------------------

def test_verify_passes_a_good_manifest_and_names_a_changed_row(make_manifest):
    m = make_manifest({"0": 20, "1": 20})
    r = CliRunner().invoke(main, ["verify", str(m.path)])
    assert r.exit_code == 0 and r.output == f"OK {m.path}: 40 rows, checksums match\n"
    # Change one image the read's spot check does not look at (it samples 16 of 40 rows).
    px = np.load(m.pixels_path)
    px[1] = 255 - px[1]
    np.save(m.pixels_path, px)
    read_manifest(m.path)  # the cheap checks cannot see it ...
    r = CliRunner().invoke(main, ["verify", str(m.path)])
    assert r.exit_code == 1  # ... verify does, and names the row
    assert "1 row(s) whose pixels do not match their sha256: table rows 1" in r.output
    assert "the content checksum differs from the sidecar's" in r.output
    assert r.output.endswith("Error: 1 of 1 manifest(s) failed verification; re-create them "
                             "with the command in their sidecar.\n")


def test_verify_says_what_is_missing_where_there_is_no_sidecar(make_manifest, tmp_path):
    (tmp_path / "notes.txt").write_text("not a manifest")
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "notes.txt")])
    assert r.exit_code == 1
    assert r.stderr == (
        f"FAILED {tmp_path / 'notes.txt'}:\n"
        f"  {tmp_path / 'notes.txt'} is not a manifest: a manifest is a .parquet file with its .json "
        "sidecar and .pixels.npy pixel store beside it, as `datakit ingest` and `datakit compose` "
        "write them. Pass the .parquet file.\n"
        f"Error: 1 of 1 manifest(s) failed verification; {tmp_path / 'notes.txt'} has no sidecar "
        "notes.txt.json. A manifest is a .parquet file with its .json sidecar, written by "
        "`datakit ingest` or `datakit compose`: pass one, or re-create it with them.\n")
    m = make_manifest({"0": 2, "1": 2}, out=tmp_path / "ms")
    m.sidecar_path.unlink()
    r = CliRunner().invoke(main, ["verify", str(m.path)])
    assert r.stderr.endswith(
        f"Error: 1 of 1 manifest(s) failed verification; {m.path} has no sidecar toy.json. A "
        "manifest is a .parquet file with its .json sidecar, written by `datakit ingest` or "
        "`datakit compose`: pass one, or re-create it with them.\n")


def test_judge_cache_key_follows_the_content(make_manifest):
    m = make_manifest({"0": 20, "1": 20})
    key = read_manifest(m.path).content_key()
    assert read_manifest(m.path).content_key() == key  # control: same content, same key
    px = np.load(m.pixels_path)
    px[1] = 255 - px[1]
    np.save(m.pixels_path, px)
    assert read_manifest(m.path).content_key() != key


# -- atomic replace ------------------------------------------------------------------------

@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_failed_switch_keeps_the_old_manifest(make_manifest, monkeypatch, fail_at):
    """os.replace failing at each of the three renames leaves the old manifest intact."""
    old = make_manifest({"0": 6, "1": 6}, name="m", seed=0)
    new = make_manifest({"0": 9, "1": 9}, name="src", seed=3, out=old.path.parent / "other")
    before = _files(old.path.parent)
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == fail_at:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError):
        write_manifest(old.path, new.table, np.asarray(new.pixels), {"command": "new"})
    monkeypatch.setattr(os, "replace", real)
    assert _files(old.path.parent) == before  # same files, same bytes, no leftovers
    again = read_manifest(old.path)
    assert len(again) == 12 and again.checksum == old.checksum


_KILL = textwrap.dedent("""
    import os, sys
    import numpy as np
    from datakit.manifest import read_manifest, write_manifest
    src, dst, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    new = read_manifest(src)
    real, calls = os.replace, []
    def dying(a, b):
        calls.append(b)
        if len(calls) == kill_at:
            os._exit(9)  # as kill -9: no cleanup runs
        return real(a, b)
    os.replace = dying
    write_manifest(dst, new.table, np.asarray(new.pixels), {"command": "new"})
""")


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_kill_during_switch_leaves_old_or_new(make_manifest, kill_at):
    """A writer killed before the sidecar's rename leaves the old manifest (repaired on the
    next read); killed after it, the new one."""
    old = make_manifest({"0": 6, "1": 6}, name="m", seed=0)
    new = make_manifest({"0": 9, "1": 9}, name="src", seed=3, out=old.path.parent / "other")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # renames: 1 store, 2 table, 3 sidecar (the commit); a 4th never comes (exit after)
    p = subprocess.run([sys.executable, "-c", _KILL, str(new.path), str(old.path), str(kill_at)],
                       env=env, capture_output=True, text=True)
    assert p.returncode == (9 if kill_at <= 3 else 0), p.stderr
    got = read_manifest(old.path)
    assert got.checksum == (old.checksum if kill_at <= 3 else new.checksum)
    left = sorted(f.name for f in old.path.parent.iterdir() if f.is_file())
    assert left == ["m.json", "m.parquet", "m.pixels.npy"]  # no temps, no journal, no lock


def test_stale_temp_files_of_dead_writers_are_removed(make_manifest):
    m = make_manifest({"0": 6, "1": 6}, name="m")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    orphan = m.path.parent / f".m.pixels.npy.tmp-{dead}"
    orphan.write_bytes(b"x" * 1000)
    live = m.path.parent / f".m.pixels.npy.tmp-{os.getppid()}"  # a live process's: kept
    live.write_bytes(b"y")
    write_manifest(m.path, m.table, np.asarray(m.pixels), {"command": "again"})
    assert not orphan.exists() and live.exists()


# -- writer lock -------------------------------------------------------------------------------

def test_second_writer_waits_then_fails_clearly(make_manifest, monkeypatch):
    m = make_manifest({"0": 6, "1": 6}, name="m")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from datakit.manifest.switch import writer_lock
            with writer_lock({str(m.path)!r}):
                print("locked", flush=True)
                time.sleep(30)
        """)], env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setenv("DATAKIT_LOCK_TIMEOUT", "0.3")
        with pytest.raises(ManifestError) as e:
            write_manifest(m.path, m.table, np.asarray(m.pixels), {"command": "second"})
        assert str(e.value) == (f"Another process is writing manifest m.parquet (it holds "
                                f"{m.path.parent / '.m.lock'}) and did not finish within 0.3 s. "
                                "Wait for it, or write under another name.")
    finally:
        holder.kill()
        holder.wait()
    with writer_lock(m.path, timeout=5):  # released when its holder dies
        pass


def test_no_lock_file_is_left_behind(make_manifest, tmp_path):
    m = make_manifest({"0": 20, "1": 20}, name="m")  # a written manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.parquet", "m.pixels.npy"]
    _change_one_byte_off_the_spot_check(m)  # a write that fails half-way
    r = CliRunner().invoke(main, ["compose", str(m.path), "-o", str(tmp_path / "c.parquet")])
    assert r.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.parquet", "m.pixels.npy"]
    with writer_lock(m.path):  # held: the file is there; released: gone
        assert (tmp_path / ".m.lock").exists()
    assert not (tmp_path / ".m.lock").exists()


# -- names and destinations ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", ".hidden", "x" * 101, "a\x1b[31m"])
def test_bad_manifest_names_are_refused(make_manifest, tmp_path, name):
    m = make_manifest({"0": 6, "1": 6}, name="m")
    with pytest.raises(BadName):
        write_manifest(tmp_path / f"{name}.parquet", m.table, np.asarray(m.pixels))


def test_a_directory_in_the_way_leaves_nothing_behind(make_manifest, tmp_path):
    m = make_manifest({"0": 6, "1": 6}, name="m")
    out = tmp_path / "out"
    (out / "X.parquet").mkdir(parents=True)
    with pytest.raises(ManifestError, match=r"X.parquet exists and is not a file"):
        write_manifest(out / "X.parquet", m.table, np.asarray(m.pixels))
    assert sorted(p.name for p in out.iterdir()) == ["X.parquet"]  # no orphan .pixels.npy


def test_ingest_name_is_checked_before_any_work(tmp_path):
    r = CliRunner().invoke(main, ["ingest", "digits", "--name", "../../escape", "-o", str(tmp_path)])
    assert r.exit_code == 2
    assert "Invalid value for '--name': The --name '../../escape' cannot name a file or folder" \
        in r.output
    assert not list(tmp_path.iterdir())


def test_compose_output_name_is_checked(make_manifest, tmp_path):
    m = make_manifest({"0": 6, "1": 6}, name="m")
    r = CliRunner().invoke(main, ["compose", str(m.path), "-o", str(tmp_path / ".parquet")])
    assert r.exit_code == 1
    assert r.output == "Error: The output manifest name (-o) must be a non-empty string, got ''.\n"


def test_unwritable_output_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = CliRunner().invoke(main, ["ingest", "digits", "-o", str(blocker / "sub")])
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: Cannot write manifest {blocker / 'sub' / 'digits.parquet'} (")
    assert r.output.count("\n") == 1 and "Traceback" not in r.output


def test_any_os_error_is_one_line_naming_the_path(monkeypatch, tmp_path):
    import datakit.study.spec

    def denied(path):
        raise PermissionError(13, "Permission denied", str(tmp_path / "s.toml"))

    monkeypatch.setattr(datakit.study.spec, "load_study", denied)
    r = CliRunner().invoke(main, ["study", str(tmp_path / "s.toml")])
    assert r.exit_code == 1
    assert r.output == (f"Error: Permission denied: {tmp_path / 's.toml'}. Check the path and that "
                        "it is writable, with free space.\n")

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(datakit.study.spec, "load_study", interrupted)
    r = CliRunner().invoke(main, ["study", str(tmp_path / "s.toml")])
    assert r.exit_code == 130 and r.output == ""


def test_the_table_checksum_reads_values_not_dtypes_and_sees_one_changed_cell():
    t = pd.DataFrame({"id": ["a/0", "a/1", None], "label": np.array([0, 1, 1], np.int32),
                      "score": [0.5, np.nan, 1.0], "class_name": pd.Categorical(["x", "y", "y"])})
    same = t.assign(label=t["label"].astype(np.int64), class_name=t["class_name"].astype(str))
    assert table_checksum(t).startswith("v2:") and table_checksum(t) == table_checksum(same)
    for changed in (t.assign(label=[0, 1, 2]), t.assign(score=[0.5, np.nan, 1.5]),
                    t.assign(id=["a/0", "a/1", "None"]),  # a missing id is not the text "None"
                    t.assign(id=["a/0", "a/", "1"]),      # the same letters, cut elsewhere
                    t.rename(columns={"score": "scores"}), t.iloc[:2]):
        assert table_checksum(changed) != table_checksum(t)


def test_a_manifest_whose_sidecar_records_a_csv_table_checksum_still_reads_and_verifies(make_manifest):
    # manifests written before the v2 checksum recorded the sha256 of the table's CSV
    m = make_manifest({"0": 3, "1": 3})
    meta = json.loads(m.sidecar_path.read_text())
    meta["table_checksum"] = table_checksum(m.table, like="")  # the CSV rendering's
    assert not meta["table_checksum"].startswith("v2:")
    m.sidecar_path.write_text(json.dumps(meta))
    assert len(read_manifest(m.path)) == 6
    assert CliRunner().invoke(main, ["verify", str(m.path)]).exit_code == 0
    edited = m.table.assign(class_name=m.table["class_name"].replace({"1": "0"}))
    edited.to_parquet(m.path)
    with pytest.raises(ManifestError, match="its table was changed after it was written"):
        read_manifest(m.path)
