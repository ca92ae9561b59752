"""Trainer: every model writes a valid run directory; sampling; bad options and manifests."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import progress_lines

from datakit.cli import main
from datakit.training import TrainConfig, sample, train
from datakit.training.augment import diff_augment
from datakit.training.models import build_models
from datakit.training.rundir import METRICS_COLUMNS, read_metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = dict(steps=4, batch_size=8, width=4, z_dim=8, log_every=2, sample_every=2,
            checkpoint_every=2, n_generate=3)


def check_run_dir(run, *, model, size, channels, classes, n_generate=3):
    """Assert the run-directory contract (DESIGN.md) on a finished run."""
    cfg = json.loads((run / "config.json").read_text())
    for key in ("manifest", "manifest_checksum", "model", "conditional", "label_dist",
                "num_classes", "class_names", "image_size", "channels", "seed", "steps",
                "batch_size", "device", "augment", "ema", "versions"):
        assert key in cfg, key
    assert cfg["model"] == model and cfg["image_size"] == size and cfg["channels"] == channels
    assert cfg["class_names"] == classes and cfg["num_classes"] == len(classes)
    assert cfg["manifest"].endswith(".parquet")
    rows = read_metrics(run / "metrics.csv")
    assert list(rows[0]) == METRICS_COLUMNS
    assert [int(r["step"]) for r in rows] == [2, 4]
    for r in rows:
        for col in ("loss_d", "loss_g", "d_real", "d_fake", "acc_real", "acc_fake"):
            assert np.isfinite(float(r[col]))
        assert 0 <= float(r["d_real"]) <= 1 and float(r["images_per_s"]) > 0
        assert (r["acc_aux"] == "") == (model != "acgan")
    grids = sorted(p.name for p in (run / "samples").glob("step_*.png"))
    assert grids == ["step_000002.png", "step_000004.png"]
    with Image.open(run / "samples" / "step_000004.png") as im:
        rows_in_grid = len(classes) if cfg["conditional"] else 8
        assert im.height == rows_in_grid * (size + 1) + 1
    with Image.open(run / "training.gif") as gif:
        # PIL merges identical consecutive frames, and 2 tiny steps may not change a grid.
        assert gif.n_frames in (1, 2) and gif.width >= 256 // (size + 1) * (size + 1)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and len(ckpt["rng"]) == 1
    gen = np.load(run / "generated.npz")
    if cfg["conditional"] and cfg["label_dist"] == "uniform":
        assert gen["labels"].tolist() == sorted(list(range(len(classes))) * n_generate)
    elif cfg["conditional"]:  # label_dist "train": the training shares (known answers below)
        from datakit.training.loop import generation_counts
        shares = torch.tensor(cfg["train_class_counts"], dtype=torch.float64)
        expected = generation_counts(n_generate, shares / shares.sum()).tolist()
        assert np.bincount(gen["labels"], minlength=len(classes)).tolist() == expected
    else:
        assert gen["labels"].tolist() == [-1] * n_generate
    assert gen["images"].shape == (len(gen["labels"]), size, size, channels)
    assert gen["images"].dtype == np.uint8 and gen["labels"].dtype == np.int64
    return cfg


@pytest.mark.parametrize("model,size,channels,extra", [
    ("dcgan", 28, 1, {}),
    ("acgan", 32, 3, {"augment": "diffaugment", "ema": True}),
    ("cgan-proj", 28, 1, {"label_dist": "train", "ema": True}),
])
def test_every_model_writes_a_valid_run_dir(make_manifest, tmp_path, model, size, channels, extra):
    m = make_manifest({"0": 6, "1": 4, "2": 5}, size=size, channels=channels)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "run"), model=model,
                            **TINY, **extra))
    cfg = check_run_dir(run, model=model, size=size, channels=channels, classes=["0", "1", "2"])
    assert cfg["conditional"] == (model != "dcgan")
    assert cfg["manifest_checksum"] == m.checksum and cfg["device"] == "cpu"
    assert cfg["train_class_counts"] == [6, 4, 5]


def test_size_64_and_models_shapes():
    for model in ("dcgan", "acgan", "cgan-proj"):
        g, d = build_models(model, z_dim=8, channels=3, image_size=64, width=2, num_classes=5)
        y = torch.tensor([0, 4])
        x = g(torch.randn(2, 8), y)
        assert x.shape == (2, 3, 64, 64) and x.abs().max() <= 1
        logit, aux = d(x, y)
        assert logit.shape == (2,)
        assert (aux is not None) == (model == "acgan")
        if aux is not None:
            assert aux.shape == (2, 5)


def test_diffaugment_is_seeded_per_image_and_differentiable():
    x = torch.zeros(4, 1, 8, 8, requires_grad=True)
    a = diff_augment(x + 0.5, torch.Generator().manual_seed(1))
    b = diff_augment(x + 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a[0], a[1])  # each image has its own parameters
    a.sum().backward()
    assert x.grad is not None


def test_train_uses_train_split_only(digits_manifest, tmp_path):
    run = train(TrainConfig(manifest=str(digits_manifest.path), out=str(tmp_path / "r"),
                            model="acgan", **TINY))
    cfg = json.loads((run / "config.json").read_text())
    n_train = int((digits_manifest.table["split"] == "train").sum())
    assert cfg["train_rows"] == n_train < len(digits_manifest)


def test_epochs_set_the_number_of_steps(make_manifest, tmp_path):
    m = make_manifest({"0": 10, "1": 10}, size=28)
    opts = dict(TINY, steps=None, epochs=0.8)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), model="dcgan", **opts))
    assert json.loads((run / "config.json").read_text())["steps"] == 2  # ceil(0.8*20/8)


def test_sample_library_and_cli(make_manifest, tmp_path):
    m = make_manifest({"a": 4, "b": 4}, size=28)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), model="acgan", **TINY))
    path = sample(run, 5, class_name="b", out=tmp_path / "b.npz")
    got = np.load(path)
    assert got["labels"].tolist() == [1] * 5 and got["images"].shape == (5, 28, 28, 1)
    runner = CliRunner()
    res = runner.invoke(main, ["sample", str(run), "--n", "6", "--out", str(tmp_path / "g.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "g.png").exists()
    res = runner.invoke(main, ["sample", str(run), "-n", "6"])
    assert res.exit_code == 0
    assert np.load(run / "samples" / "sample_all_6.npz")["labels"].tolist() == [0, 1, 0, 1, 0, 1]
    res = runner.invoke(main, ["sample", str(run), "--n", "2", "--class", "z"])
    assert res.exit_code == 1
    assert res.output == f"Error: Unknown class 'z' for run {run}; its classes are a b.\n"
    res = runner.invoke(main, ["sample", str(tmp_path / "nope"), "--n", "2"])
    assert res.exit_code == 1
    assert res.output == (f"Error: {tmp_path / 'nope' / 'config.json'} not found: "
                          f"{tmp_path / 'nope'} is not a run directory written by "
                          "`datakit train`.\n")


def test_cli_train_writes_run_dir(make_manifest, tmp_path):
    m = make_manifest({"0": 4, "1": 4}, size=28)
    out = tmp_path / "cli"
    args = ["train", str(m.path), "--out", str(out), "--model", "dcgan", "--steps", "4",
            "--batch-size", "8", "--width", "4", "--z-dim", "8", "--log-every", "2",
            "--sample-every", "2", "--checkpoint-every", "2", "--n-generate", "3"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert res.output.endswith(f"Wrote {out}\n")
    check_run_dir(out, model="dcgan", size=28, channels=1, classes=["0", "1"])
    res = CliRunner().invoke(main, args)  # the same --out again, without --resume
    assert res.exit_code == 1
    assert res.output == (f"Error: Run directory {out} already holds a run; pass --resume to "
                          "continue it or choose another --out.\n")


def _invoke(args):
    return CliRunner().invoke(main, ["train", *map(str, args)])


def test_bad_options_and_manifests(make_manifest, tmp_path):
    m = make_manifest({"0": 4, "1": 4}, size=28, name="ok")
    out = tmp_path / "o"
    res = _invoke([m.path, "--out", out, "--steps", "3", "--epochs", "1"])
    assert res.exit_code == 1 and res.output == "Error: Give either --steps or --epochs, not both.\n"
    res = _invoke([m.path, "--out", out, "--steps", "0"])
    assert res.output == "Error: --steps must be at least 1, got 0.\n"
    res = _invoke([m.path, "--out", out, "--lr-d", "-1"])
    assert res.output == "Error: --lr-d must be 0 (auto) or positive, got -1.0.\n"
    res = _invoke([m.path, "--out", out, "--model", "biggan"])
    assert res.exit_code == 2 and "'biggan' is not one of 'dcgan', 'acgan', 'cgan-proj'" in res.output
    missing = tmp_path / "missing.parquet"
    res = _invoke([missing, "--out", out])
    assert res.exit_code == 1
    assert res.output == (f"Error: Manifest not found: {missing}. Pass the .parquet file "
                          "written by `datakit ingest` or `datakit compose`.\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("a file that exists but is no manifest")
    res = _invoke([notes, "--out", out])
    assert res.output == (f"Error: {notes} is not a manifest: a manifest is a .parquet file with its "
                          ".json sidecar and .pixels.npy pixel store beside it, as `datakit ingest` "
                          "and `datakit compose` write them. Pass the .parquet file.\n")
    res = _invoke([m.path.parent, "--out", out])  # the folder that holds the manifests
    assert res.output == (f"Error: {m.path.parent} is a folder; the manifests in it: ok.parquet; "
                          "pass one of them.\n")
    (tmp_path / "empty").mkdir()
    res = _invoke([tmp_path / "empty", "--out", out])
    assert res.output == (f"Error: {tmp_path / 'empty'} is a folder with no manifest in it; pass a "
                          "manifest's .parquet file, written by `datakit ingest` or `datakit compose`.\n")
    m48 = make_manifest({"0": 2, "1": 2}, size=48, name="big")
    res = _invoke([m48.path, "--out", out])
    assert res.exit_code == 1
    assert res.output == ("Error: Manifest big.parquet stores 48x48 images; the trainer supports "
                          "square images of 28, 32, 64 pixels. Re-ingest or compose it at one "
                          "of those sizes (e.g. --size 32).\n")
    one = make_manifest({"7": 4}, size=28, name="one")
    res = _invoke([one.path, "--out", out, "--model", "cgan-proj"])
    assert res.exit_code == 1
    assert res.output == ("Error: Model cgan-proj is conditional but manifest one.parquet has "
                          "only 1 class; use --model dcgan or a manifest with at least two "
                          "classes.\n")
    res = _invoke([m.path, "--out", out, "--device", "cuda"])
    if not torch.cuda.is_available():
        assert res.output == ("Error: --device cuda was asked for but PyTorch sees no CUDA GPU; "
                              "use --device cpu or --device auto.\n")
    assert not out.exists()  # no bad request leaves a half-made run directory


def test_label_dist_train_follows_class_shares_and_uniform_does_not(make_manifest):
    from datakit.training.data import load_training_set
    from datakit.training.loop import _label_probabilities

    m = make_manifest({"0": 6, "1": 2, "2": 2}, size=28)
    data = load_training_set(m)
    opts = dict(manifest=str(m.path), out="unused", model="acgan")
    train_probs = _label_probabilities(TrainConfig(label_dist="train", **opts), data)
    uniform = _label_probabilities(TrainConfig(label_dist="uniform", **opts), data)
    assert torch.allclose(train_probs, torch.tensor([0.6, 0.2, 0.2]))
    assert torch.allclose(uniform, torch.full((3,), 1 / 3))


def test_generated_labels_follow_the_label_dist(make_manifest, tmp_path):
    from datakit.training.loop import generation_counts

    assert generation_counts(5, torch.full((3,), 1 / 3)).tolist() == [5, 5, 5]
    assert generation_counts(3, torch.tensor([0.6, 0.2, 0.2])).tolist() == [5, 2, 2]  # 5.4, 1.8, 1.8
    m = make_manifest({"0": 6, "1": 2, "2": 2}, size=28)
    opts = dict(manifest=str(m.path), model="acgan", **{**TINY, "n_generate": 10})
    skewed = train(TrainConfig(out=str(tmp_path / "t"), label_dist="train", **opts))
    even = train(TrainConfig(out=str(tmp_path / "u"), label_dist="uniform", **opts))
    assert np.bincount(np.load(skewed / "generated.npz")["labels"]).tolist() == [18, 6, 6]
    assert np.bincount(np.load(even / "generated.npz")["labels"]).tolist() == [10, 10, 10]


def test_sample_refuses_a_class_for_an_unconditional_run(make_manifest, tmp_path):
    m = make_manifest({"0": 4, "1": 4}, size=28)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), model="dcgan", **TINY))
    res = CliRunner().invoke(main, ["sample", str(run), "--n", "2", "--class", "1"])
    assert res.exit_code == 1
    assert res.output == (f"Error: Run {run} trained an unconditional dcgan model; it cannot "
                          "sample a chosen class. Leave out --class.\n")
    res = CliRunner().invoke(main, ["sample", str(run), "--n", "3", "--out", str(tmp_path / "x.jpg")])
    assert res.output == f"Error: --out {tmp_path / 'x.jpg'} must end in .npz or .png.\n"
    got = np.load(sample(run, 3))
    assert got["labels"].tolist() == [-1, -1, -1] and got["images"].shape == (3, 28, 28, 1)


def test_training_off_a_terminal_logs_how_far_it_is(make_manifest, tmp_path, off_terminal, caplog):
    m = make_manifest({"0": 4, "1": 4}, size=28)
    off_terminal.tick = 6  # each clock reading 6 s later: a line every other step
    train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), model="dcgan", **TINY))
    lines = progress_lines(caplog, "train dcgan")
    assert [line.split(",")[0] for line in lines[:-1]] == ["train dcgan: 2/4 (50%)",
                                                           "train dcgan: 4/4 (100%)"]
    assert lines[-1].startswith("train dcgan: 4/4 done in ")
