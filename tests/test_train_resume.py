"""Trainer robustness: a killed run resumes bit for bit; divergence stops cleanly; DDP under torchrun."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from datakit.errors import TrainingError
from datakit.training import TrainConfig, train
from datakit.training.loop import NAN_AT_STEP_ENV
from datakit.training.rundir import read_metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Wide enough that a step takes a few milliseconds, so the subprocess is still running
# when the test kills it; still only a few seconds in all.
RESUME = dict(model="acgan", steps=60, batch_size=16, width=16, z_dim=16, log_every=5,
              sample_every=30, checkpoint_every=5, n_generate=2, augment="diffaugment",
              ema=True, seed=3)


def _cli_args(manifest, out, opts):
    args = [str(manifest), "--out", str(out)]
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            args.append(flag)
        else:
            args += [flag, str(v)]
    return args


def _env():
    env = dict(os.environ, DATAKIT_PROGRESS="0", DATAKIT_QUIET="1", OMP_NUM_THREADS="1")
    env.pop(NAN_AT_STEP_ENV, None)
    return env


def _weights(run):
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def _assert_same_state(a, b):
    for part in ("generator", "discriminator", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    for part in ("opt_g", "opt_d"):
        for pid, st in a[part]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b[part]["state"][pid][k]), f"{part}.{pid}.{k} differs"


def test_killed_run_resumes_to_identical_weights(make_manifest, tmp_path):
    m = make_manifest({"0": 20, "1": 20, "2": 20}, size=28)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "datakit", "train",
                             *_cli_args(m.path, killed, RESUME)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 60
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-run, at whatever point it has reached
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = _weights(killed)["step"]
    assert 0 < killed_at < RESUME["steps"]

    train(TrainConfig(manifest=str(m.path), out=str(killed), resume=True, **RESUME))
    straight = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "straight"), **RESUME))

    a, b = _weights(killed), _weights(straight)
    assert a["step"] == b["step"] == RESUME["steps"]
    _assert_same_state(a, b)
    assert np.array_equal(np.load(killed / "generated.npz")["images"],
                          np.load(straight / "generated.npz")["images"])
    # metrics.csv has each logged step once, with the same values after the resume point
    ra, rb = read_metrics(killed / "metrics.csv"), read_metrics(straight / "metrics.csv")
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    later = [(x, y) for x, y in zip(ra, rb) if int(x["step"]) > killed_at]
    assert later and all(x["loss_d"] == y["loss_d"] and x["acc_aux"] == y["acc_aux"]
                         for x, y in later)


def test_resume_refuses_a_different_model(make_manifest, tmp_path):
    m = make_manifest({"0": 4, "1": 4}, size=28)
    opts = dict(steps=2, batch_size=4, width=2, z_dim=4, n_generate=1, model="dcgan")
    train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), **opts))
    with pytest.raises(TrainingError, match=r"Cannot resume .*: model differ from the run's "
                                            r"config\.json"):
        train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), resume=True,
                          **dict(opts, model="acgan")))


def test_divergence_stops_and_keeps_last_good_checkpoint(make_manifest, tmp_path, monkeypatch):
    m = make_manifest({"0": 6, "1": 6}, size=28)
    monkeypatch.setenv(NAN_AT_STEP_ENV, "7")
    out = tmp_path / "nan"
    with pytest.raises(TrainingError) as err:
        train(TrainConfig(manifest=str(m.path), out=str(out), model="acgan", steps=20,
                          batch_size=4, width=2, z_dim=4, checkpoint_every=5, log_every=5,
                          lr_d=2e-4, lr_g=2e-4))
    msg = str(err.value)
    assert msg.startswith("Training diverged at step 7: a loss became NaN or infinite (loss_d=nan")
    assert f"The last good checkpoint ({out / 'checkpoints' / 'last.pt'}, step 5) was kept" in msg
    assert "--lr-d 0.0001 --lr-g 0.0001" in msg and msg.endswith("continue with --resume.")
    ckpt = _weights(out)
    assert ckpt["step"] == 5
    assert all(torch.isfinite(v).all() for v in ckpt["generator"].values() if v.is_floating_point())
    assert not (out / "generated.npz").exists()


def test_absurd_learning_rate_is_caught_as_divergence(make_manifest, tmp_path):
    m = make_manifest({"0": 6, "1": 6}, size=28)
    with pytest.raises(TrainingError, match=r"^Training diverged at step \d+"):
        train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), model="cgan-proj",
                          steps=200, batch_size=4, width=2, z_dim=4, lr_d=1e30, lr_g=1e30,
                          beta1=0.0, checkpoint_every=1000))


#: What a torchrun launcher prints when it aborts at its own exit (a C++ std::thread still
#: joinable), after its workers have finished.
LAUNCHER_ABORT = "terminate called without an active exception"


def test_ddp_two_gloo_processes(make_manifest, tmp_path):
    m = make_manifest({"0": 8, "1": 8}, size=28)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port", str(29500 + os.getpid() % 1000), "-m", "datakit", "train",
           *_cli_args(m.path, out, dict(model="cgan-proj", steps=4, batch_size=8, width=2,
                                        z_dim=4, log_every=2, sample_every=2,
                                        checkpoint_every=2, n_generate=2))]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    if res.returncode != 0 and res.stderr.strip() == LAUNCHER_ABORT:
        # Rarely (once in the full-suite runs of two sessions; 0 of 6 runs of this test alone)
        # torchrun's own launcher aborts at exit with this one line and nothing else: no
        # worker failed (torchrun would name it, with its exit code). Once more, from scratch;
        # a second abort, or any other failure, fails.
        shutil.rmtree(out, ignore_errors=True)
        res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count(f"Wrote {out}") == 1  # rank 0 alone reports and writes
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["world_size"] == 2 and cfg["batch_size"] == 8
    ckpt = _weights(out)
    assert ckpt["step"] == 4 and len(ckpt["rng"]) == 2  # both ranks' batch streams are saved
    assert not torch.equal(ckpt["rng"][0], ckpt["rng"][1])
    assert [r["step"] for r in read_metrics(out / "metrics.csv")] == ["2", "4"]
    assert np.load(out / "generated.npz")["images"].shape == (4, 28, 28, 1)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_each_process_takes_the_gpu_of_its_local_rank_not_its_global_rank(monkeypatch):
    # Host 2 of a two-host torchrun job: global ranks 2 and 3 are local ranks 0 and 1.
    from datakit._core.device import resolve_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cpu", local_rank=1) == torch.device("cpu")


def test_ranks_that_found_different_checkpoints_all_refuse(tmp_path, monkeypatch):
    # Two hosts whose run folders are not shared: rank 0 sees step 40, rank 1 sees nothing.
    from datakit.training import distributed, loop
    from datakit.training.rundir import RunDir
    procs = distributed.Processes(rank=1, world_size=2, local_rank=0)
    monkeypatch.setattr(loop, "_checkpoint_to_resume", lambda *a: None)
    monkeypatch.setattr(distributed, "gather_objects", lambda obj, p: [(None, 40), obj])
    with pytest.raises(TrainingError, match=r"different checkpoints in .* \(rank 0: step 40, "
                                            r"rank 1: none\)\. Across hosts the run folder"):
        loop._agreed_checkpoint(None, RunDir(tmp_path / "run"), {}, procs)
    # the healthy control: both ranks found step 40
    monkeypatch.setattr(loop, "_checkpoint_to_resume", lambda *a: {"step": 40})
    assert loop._agreed_checkpoint(None, RunDir(tmp_path / "run"), {}, procs) == {"step": 40}
    # one rank's refusal is every rank's
    monkeypatch.setattr(distributed, "gather_objects",
                        lambda obj, p: [("Run directory X already holds a run.", None), obj])
    with pytest.raises(TrainingError, match="already holds a run"):
        loop._agreed_checkpoint(None, RunDir(tmp_path / "run"), {}, procs)


# -- resuming elsewhere: another device, another number of processes ---------------------

SMALL = dict(model="acgan", steps=2, batch_size=4, width=2, z_dim=4, log_every=1,
             sample_every=2, checkpoint_every=2, n_generate=1)


def _rewrite_checkpoint(run, **parts):
    ckpt = _weights(run)
    ckpt.update(parts)
    torch.save(ckpt, run / "checkpoints" / "last.pt")


def _said(monkeypatch):
    from datakit.training import loop
    said = []
    monkeypatch.setattr(loop, "log", said.append)
    return said


def test_a_gpu_checkpoint_resumes_on_the_cpu_with_a_new_stream(make_manifest, tmp_path,
                                                               monkeypatch):
    # A CUDA generator's state is 16 bytes (seed, offset); a CPU one's 5,056 (Mersenne twister).
    m = make_manifest({"0": 4, "1": 4}, size=28)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), seed=5, **SMALL))
    cuda_state = torch.tensor([5, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8)
    _rewrite_checkpoint(run, rng=[cuda_state])
    said = _said(monkeypatch)
    train(TrainConfig(manifest=str(m.path), out=str(run), resume=True, seed=5,
                      **dict(SMALL, steps=4)))
    assert _weights(run)["step"] == 4 and (run / "generated.npz").exists()
    assert ("Warning: the checkpoint's random-number state (16 bytes) was written on another "
            "kind of device than this cpu generator's (5056 bytes), and a stream cannot "
            "continue across devices: batches, noise and augmentations continue from a new "
            "stream seeded by --seed 5 and step 2.") in said


def test_a_cpu_checkpoint_state_goes_into_a_cuda_generator_as_a_new_stream(monkeypatch):
    """The other way round, without a GPU: a stand-in for torch's CUDA generator, which takes
    only its own 16-byte states ("RNG state is wrong size")."""
    from datakit.training import loop
    from datakit.training.distributed import Processes

    class CudaGenerator:
        device = torch.device("cuda", 0)
        seeded = None

        def get_state(self):
            return torch.zeros(16, dtype=torch.uint8)

        def set_state(self, state):
            if state.numel() != 16:
                raise RuntimeError("RNG state is wrong size")

        def manual_seed(self, seed):
            self.seeded = seed

    said = _said(monkeypatch)
    gen = CudaGenerator()
    loop._restore_stream(gen, [torch.Generator().get_state()], 5, 2, Processes())
    assert gen.seeded == loop.new_stream_seed(5, 2, 0)
    assert said[0].startswith("Warning: the checkpoint's random-number state (5056 bytes) was "
                              "written on another kind of device than this cuda generator's "
                              "(16 bytes)")


def test_resume_keeps_the_optimizer_kernel_this_device_chooses(make_manifest, tmp_path):
    # A checkpoint written where Adam ran unfused (a CPU before fused CPU kernels, as older
    # datakit did) resumes fused here, as a fresh run here would: not the saved choice.
    m = make_manifest({"0": 4, "1": 4}, size=28)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), **SMALL))
    fresh = _weights(run)["opt_g"]["param_groups"][0]["fused"]
    assert fresh is True  # what this device chooses (fused Adam runs on CPU and CUDA)
    ckpt = _weights(run)
    for part in ("opt_g", "opt_d"):
        for group in ckpt[part]["param_groups"]:
            group["fused"] = None
    _rewrite_checkpoint(run, opt_g=ckpt["opt_g"], opt_d=ckpt["opt_d"])
    train(TrainConfig(manifest=str(m.path), out=str(run), resume=True, **dict(SMALL, steps=4)))
    resumed = _weights(run)
    assert resumed["step"] == 4
    assert [g["fused"] for p in ("opt_g", "opt_d") for g in resumed[p]["param_groups"]] == [fresh] * 2


def test_new_streams_after_a_world_size_change_follow_the_seed(make_manifest, tmp_path,
                                                               monkeypatch):
    # Written by 2 processes, resumed by 1: the streams restart, from the run's own --seed.
    m = make_manifest({"0": 4, "1": 4}, size=28)
    said = _said(monkeypatch)

    def resumed_stream(seed, name):
        run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / name), seed=seed, **SMALL))
        state = _weights(run)["rng"][0]
        _rewrite_checkpoint(run, rng=[state, state])
        train(TrainConfig(manifest=str(m.path), out=str(run), resume=True, seed=seed,
                          **dict(SMALL, steps=4)))
        return _weights(run)["rng"][0]

    one, again, two = resumed_stream(1, "a"), resumed_stream(1, "b"), resumed_stream(2, "c")
    assert torch.equal(one, again)      # reproducible
    assert not torch.equal(one, two)    # and the seed's own
    assert said.count("Warning: the checkpoint was written by 2 process(es), now 1: batches, "
                      "noise and augmentations continue from a new stream seeded by --seed 1 "
                      "and step 2.") == 2


def test_sync_batchnorm_under_ddp_converts_the_generator_and_refuses_the_cpu(make_manifest,
                                                                            tmp_path,
                                                                            monkeypatch):
    from datakit.training import distributed
    from datakit.training.models import build_models

    g, _ = build_models("cgan-proj", z_dim=4, channels=1, image_size=28, width=2, num_classes=2)
    norms = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    params = [id(p) for p in g.parameters()]
    assert distributed.sync_batchnorm(g, distributed.Processes()) is g  # one process: as is
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in g.modules())
    synced = distributed.sync_batchnorm(g, distributed.Processes(rank=0, world_size=2))
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) == len(norms) == 3
    assert [id(p) for p in synced.parameters()] == params  # the optimiser's tensors still

    m = make_manifest({"0": 4, "1": 4}, size=28)
    monkeypatch.setattr(distributed, "setup", lambda cuda: distributed.Processes(0, 2, 0))
    with pytest.raises(TrainingError) as err:
        train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), sync_batchnorm=True,
                          **SMALL))
    assert str(err.value) == ("--sync-batchnorm needs CUDA GPUs: PyTorch's SyncBatchNorm does "
                              "not run on the CPU. Leave it off, or train with --device cuda.")


def test_a_finished_run_resumed_with_more_n_generate_only_draws_more(make_manifest, tmp_path):
    """What the audit advises for classes with too few generated images: `datakit train ...
    --resume --n-generate N` at the run's own step count trains no further and rewrites
    generated.npz with N images per class."""
    m = make_manifest({"0": 6, "1": 6}, size=28)
    opts = dict(manifest=str(m.path), out=str(tmp_path / "r"), model="acgan", steps=4,
                batch_size=4, width=2, z_dim=4, checkpoint_every=2, log_every=1, n_generate=2)
    run = train(TrainConfig(**opts))
    before = _weights(run)
    rows = len(read_metrics(run / "metrics.csv"))
    train(TrainConfig(**{**opts, "n_generate": 9}, resume=True))
    gen = np.load(run / "generated.npz")
    assert sorted(gen["labels"].tolist()) == [0] * 9 + [1] * 9
    assert len(read_metrics(run / "metrics.csv")) == rows
    _assert_same_state(before, _weights(run))
