"""The training loop: manifest in, run directory out.

One plain loop with numbered steps. Design choices, and why:

* All training pixels go to the device once, as uint8 (4x smaller than float32); a batch is
  an index draw from a ``torch.Generator`` and one gather, so there is no DataLoader, no
  per-sample Python and no image decoding in a step.
* That generator also draws noise, fake labels and augmentations, and its state is saved in
  every checkpoint, so a resumed run on the CPU repeats an uninterrupted one bit for bit.
* Real and fake images go through the discriminator as one concatenated batch: one forward
  and one backward per network per step, which is fastest and what DDP expects.
* How the device is used (precision, fused Adam, torch.compile, cuDNN autotuning, how often
  the host syncs to check the losses) is decided once, in :mod:`datakit.training.accel`:
  on CUDA bf16 autocast and torch.compile; on the CPU float32, unless ``precision="bf16"``
  asks for the CUDA path there (which is how the tests run it). channels_last everywhere.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import datakit.training.distributed as distributed
from datakit.training import accel as accel_
from datakit._core.device import resolve_device
from datakit._core.optional import skip_broken_cupti_probe
from datakit._core.progress import log, progress
from datakit._core.version import __version__
from datakit.errors import TrainingError
from datakit.manifest.read import read_manifest
from datakit.training.augment import diff_augment
from datakit.training.checkpoint import load_checkpoint, save_checkpoint
from datakit.training.config import TrainConfig
from datakit.training.data import TrainingSet, check_trainable, load_training_set
from datakit.training.models import build_models, discriminator_loss, generator_loss
from datakit.training.probe import PlateauState, Probe, update_plateau
from datakit.training.rundir import GRID_COLUMNS, RunDir
from datakit.training.sampling import generate_images, to_uint8

#: Test hook: poison the discriminator loss with NaN at this step (divergence handling tests).
NAN_AT_STEP_ENV = "DATAKIT_TRAIN_NAN_AT_STEP"
#: Config fields that must not change when a run is resumed.
RESUME_FIXED = ("model", "manifest_checksum", "z_dim", "width", "image_size", "channels",
                "num_classes")


def train(config: TrainConfig) -> Path:
    """Train a GAN as ``config`` says and write its run directory; returns the directory.

    Runs as one process, or as several under ``torchrun`` (DDP; rank 0 writes).
    Raises :class:`TrainingError` for bad options or manifests and when training diverges.
    """
    config.validate()
    skip_broken_cupti_probe()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device, local_rank)
    accel = accel_.resolve_accel(config.precision, config.compile, config.log_every, device)
    procs = distributed.setup(device.type == "cuda")
    try:
        with accel_.device_settings(accel):
            return _train(config, procs, device, accel)
    finally:
        distributed.teardown(procs)


def _train(cfg: TrainConfig, procs: distributed.Processes, device: torch.device,
           accel: accel_.Accel) -> Path:
    # channels_last is the fast layout for cuDNN and for oneDNN's CPU convolutions alike
    # (measured 1.0-3.6x faster on CPU for these networks; see bench/train).
    fmt = torch.channels_last

    # 1. Read the manifest, choose the training rows, and refuse what cannot be trained.
    #    The batch and rates left at auto are resolved here: from here on cfg holds the values
    #    the run trains with, and config.json records them.
    manifest = read_manifest(cfg.manifest)
    data = load_training_set(manifest)
    check_trainable(cfg, manifest, data)
    run = RunDir(cfg.out)
    scale = accel_.resolve_batch(cfg.batch_size, cfg.lr_g, cfg.lr_d, device.type,
                                 _recorded_config(cfg, run))
    asked_batch = cfg.batch_size
    cfg = dataclasses.replace(cfg, batch_size=scale.batch_size, lr_g=scale.lr_g, lr_d=scale.lr_d)
    if cfg.batch_size % procs.world_size:
        what = (f"--batch-size {cfg.batch_size}" if asked_batch else
                f"The batch {cfg.batch_size} ({scale.auto['batch_size']})")
        raise TrainingError(f"{what} does not split evenly over {procs.world_size} processes; "
                            f"use a multiple of {procs.world_size}.")
    if cfg.sync_batchnorm and procs.distributed and device.type != "cuda":
        raise TrainingError("--sync-batchnorm needs CUDA GPUs: PyTorch's SyncBatchNorm does not "
                            "run on the CPU. Leave it off, or train with --device cuda.")
    batch = cfg.batch_size // procs.world_size
    total_steps = cfg.total_steps(len(data.labels))
    run_config = _run_config(cfg, manifest, data, total_steps, device, procs, accel, scale)

    # 2. Find the checkpoint to resume from (every rank reads; only rank 0 writes).
    ckpt = _agreed_checkpoint(cfg, run, run_config, procs)
    distributed.barrier(procs)  # every rank has looked before rank 0 creates anything
    if procs.is_main:
        run.create()
    distributed.barrier(procs)

    # 3. Put every training pixel on the device once, as uint8.
    images = torch.from_numpy(np.ascontiguousarray(data.pixels)).to(device).permute(0, 3, 1, 2)
    images = images.contiguous(memory_format=fmt)
    labels = torch.from_numpy(np.array(data.labels, dtype=np.int64)).to(device)
    label_probs = _label_probabilities(cfg, data).to(device)

    # 4. Networks (same seed on every rank), optimisers, EMA, and the step's random generator.
    torch.manual_seed(cfg.seed)
    g_net, d_net = build_models(cfg.model, z_dim=cfg.z_dim, channels=images.shape[1],
                                image_size=images.shape[2], width=cfg.width,
                                num_classes=data.num_classes)
    if cfg.sync_batchnorm:
        g_net = distributed.sync_batchnorm(g_net, procs)
    g_net.to(device, memory_format=fmt)
    d_net.to(device, memory_format=fmt)
    ema = copy.deepcopy(g_net).eval().requires_grad_(False) if cfg.ema else None
    opt_g = torch.optim.Adam(g_net.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2),
                             fused=accel.fused_adam or None)
    opt_d = torch.optim.Adam(d_net.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2),
                             fused=accel.fused_adam or None)
    rng = torch.Generator(device=device)
    rng.manual_seed(cfg.seed * 1_000_003 + procs.rank)  # each rank draws different batches
    start = 0
    plateau = PlateauState()
    if ckpt is not None:
        start = _restore(ckpt, g_net, d_net, ema, opt_g, opt_d, rng, procs, cfg.seed)
        plateau = PlateauState.from_dict(ckpt.get("plateau"))
    probe = None
    if cfg.probe_every and procs.is_main:  # rank 0 probes; every rank learns when to stop
        probe = Probe(manifest, data.pixels, label_probs, conditional=cfg.conditional,
                      n_samples=cfg.probe_samples, z_dim=cfg.z_dim, seed=cfg.seed,
                      device=device).fit()
    g_train = accel_.compile_network(distributed.wrap(g_net, procs, device), accel)
    d_train = accel_.compile_network(distributed.wrap(d_net, procs, device), accel)
    fixed_z, fixed_y = _fixed_noise(cfg, data.num_classes, device)
    if procs.is_main:
        run.write_config(run_config)
        run.start_metrics(start if ckpt is not None else None)
        log(f"Training {cfg.model} on {len(data.labels)} images ({data.rows}) of "
            f"{manifest.path.name}, {total_steps} steps of {cfg.batch_size} at lr "
            f"{cfg.lr_g:g}/{cfg.lr_d:g} on {device}"
            + (f" ({', '.join(accel_.label(k) for k in scale.auto)}: auto)" if scale.auto else "")
            + (f" x{procs.world_size} processes" if procs.distributed else "")
            + (f", resuming at step {start}" if start else ""))

    autocast = accel.autocast()
    nan_at = int(os.environ.get(NAN_AT_STEP_ENV, "0") or 0)
    check_every = accel.finite_check_every  # a check syncs the host with the device
    cuda_graphs = isinstance(g_train, accel_.CompiledOrEager) and accel.compile == "reduce-overhead"
    first_bad = torch.full((), -1, dtype=torch.int64, device=device)
    last_ckpt_step = start if ckpt is not None else None
    n = len(labels)
    bar = progress(total=total_steps, initial=start, desc=f"train {cfg.model}", unit="step")
    plateaued, step = False, start
    t_mark, step_mark = time.perf_counter(), start
    for step in range(start + 1, total_steps + 1):
        if cuda_graphs:  # a new iteration: CUDA graphs may reuse the last step's output memory
            torch.compiler.cudagraph_mark_step_begin()
        # 5. A batch: real images and labels by index; noise and labels for the fakes.
        idx = torch.randint(n, (batch,), generator=rng, device=device)
        real = images[idx].float().div_(127.5).sub_(1.0).contiguous(memory_format=fmt)
        y_real = labels[idx]
        y_fake = torch.multinomial(label_probs, batch, replacement=True, generator=rng)
        z = torch.randn(batch, cfg.z_dim, generator=rng, device=device)

        # 6. Discriminator step: real and (detached) fake in one batch, augmented alike.
        with autocast:
            fake = g_train(z, y_fake)
            both = torch.cat([real, fake.detach()])
            if cfg.augment == "diffaugment":
                both = diff_augment(both, rng)
            logit, aux = d_train(both, torch.cat([y_real, y_fake]))
            loss_d = discriminator_loss(cfg.model, logit[:batch], logit[batch:],
                                        None if aux is None else aux[:batch],
                                        None if aux is None else aux[batch:], y_real, y_fake)
        if step == nan_at:
            loss_d = loss_d * float("nan")
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # 7. Generator step: make the updated discriminator call the fakes real.
        with autocast:
            seen = diff_augment(fake, rng) if cfg.augment == "diffaugment" else fake
            logit_g, aux_g = d_train(seen, y_fake)
            loss_g = generator_loss(cfg.model, logit_g, aux_g, y_fake)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if step == start + 1:  # both networks compiled (or fell back) in this first step
            _settle(g_train, d_train)

        # 8. EMA generator: a smoothed copy of the weights, used for sampling. The decay
        #    ramps up over the first steps, or the random initial weights would linger in it.
        if ema is not None:
            _update_ema(ema, g_net, min(cfg.ema_decay, (1 + step) / (10 + step)))

        # 9. Divergence: remember the first step with a non-finite loss; stop on it.
        finite = torch.isfinite(loss_d.detach()) & torch.isfinite(loss_g.detach())
        first_bad = torch.where((first_bad < 0) & ~finite, torch.full_like(first_bad, step),
                                first_bad)
        last = step == total_steps

        # 9b. Probe: a cheap quality reading; stop once it has plateaued (all ranks agree).
        probing = bool(cfg.probe_every) and (step % cfg.probe_every == 0 or last)
        reading: dict[str, float] = {}
        if probing:
            if probe is not None:
                reading = probe.read(ema or g_net, autocast)
                update_plateau(plateau, reading[probe.criterion], tolerance=cfg.plateau_tolerance,
                               higher_is_better=probe.higher_is_better)
            stop = bool(cfg.plateau_patience) and plateau.since_best >= cfg.plateau_patience
            if distributed.any_rank_flag(int(stop), procs, device) and not last:
                plateaued, last = True, True
        logging = step % cfg.log_every == 0 or last or probing
        sampling = step % cfg.sample_every == 0 or last
        saving = step % cfg.checkpoint_every == 0 or last
        if step % check_every == 0 or logging or sampling or saving:
            bad = distributed.any_rank_flag(int(first_bad.item()), procs, device)
            if bad >= 0:
                bar.close()
                raise _divergence(bad, loss_d, loss_g, cfg, run, last_ckpt_step)

        # 10. Log, draw the fixed-noise grid, checkpoint (rank 0 writes; all ranks gather RNG).
        bar.update(1)
        if logging and procs.is_main:
            now = time.perf_counter()
            speed = (step - step_mark) * cfg.batch_size / max(now - t_mark, 1e-9)
            t_mark, step_mark = now, step
            row = _metrics_row(step, step * cfg.batch_size / n, loss_d, loss_g, logit, aux,
                               y_real, batch, speed)
            row.update(reading)
            run.append_metrics(row)
            bar.set_postfix(loss_d=f"{row['loss_d']:.3f}", loss_g=f"{row['loss_g']:.3f}",
                            img_s=f"{speed:.0f}")
        if sampling and procs.is_main:
            grid = to_uint8(_render(ema or g_net, fixed_z, fixed_y, autocast))
            run.write_grid(step, grid, GRID_COLUMNS)
        if saving:
            states = distributed.gather_objects(rng.get_state(), procs)
            if procs.is_main:
                save_checkpoint({**_checkpoint_state(step, g_net, d_net, ema, opt_g, opt_d,
                                                     states, cfg), "plateau": plateau.to_dict()},
                                run.checkpoint_path)
            last_ckpt_step = step
        if last:
            break
    bar.close()

    # 11. The end: config.json learns how long the run trained, then the training.gif
    #     animation, then generated.npz for the audit (last: its presence means "finished").
    if procs.is_main:
        if plateaued:
            log(f"Stopped at step {step} of {total_steps}: {cfg.plateau_patience} probes without "
                f"improving on the best ({plateau.best:.4g}).")
        run.write_config({**run_config, "steps_done": step,
                          "accel": {**run_config["accel"], "compiled": _compiled(g_train, d_train)},
                          "plateaued": plateaued,
                          "probe_best": plateau.best if cfg.probe_every else None})
        run.write_gif()
        _write_generated(cfg, run, ema or g_net, label_probs, device, autocast)
    distributed.barrier(procs)
    return run.root


# -- helpers of the loop -------------------------------------------------------------------

def _settle(*nets) -> None:
    for net in nets:
        if isinstance(net, accel_.CompiledOrEager):
            net.settle()


def _compiled(*nets) -> bool:
    """Whether the run trained compiled networks (False when off or after a fallback)."""
    return all(isinstance(n, accel_.CompiledOrEager) and n.active for n in nets)


def _run_config(cfg: TrainConfig, manifest, data: TrainingSet, total_steps: int,
                device: torch.device, procs: distributed.Processes,
                accel: accel_.Accel, scale: accel_.BatchSettings) -> dict[str, Any]:
    """config.json: the TrainConfig fields (as asked for, with the batch and rates resolved),
    what the audit needs to read the run, and ``accel``: how the device was used (precision,
    fused Adam, compile, ...) and ``auto``: why each setting left at auto has its value."""
    g = manifest.geometry
    out = cfg.to_dict()
    out.update({
        "manifest": str(manifest.path.resolve()),
        "manifest_checksum": manifest.checksum,
        "conditional": cfg.conditional,
        "num_classes": data.num_classes,
        "class_names": data.class_names,
        "image_size": g.height,
        "channels": g.channels,
        "steps": total_steps,
        "steps_requested": cfg.steps,
        "train_rows": int(len(data.labels)),
        "train_selection": data.rows,
        "train_class_counts": data.class_counts().tolist(),
        "device": device.type,
        "world_size": procs.world_size,
        "accel": {**accel.to_dict(), "auto": scale.auto},
        "versions": {"datakit": __version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    })
    return out


def _recorded_config(cfg: TrainConfig, run: RunDir) -> dict[str, Any] | None:
    """The config.json of the run ``cfg`` resumes (None for a new run, or one not readable:
    :func:`_checkpoint_to_resume` then says what is wrong with the folder)."""
    if not (cfg.resume and run.config_path.is_file()):
        return None
    try:
        recorded = run.read_config()
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _agreed_checkpoint(cfg: TrainConfig, run: RunDir, run_config: dict[str, Any],
                       procs: distributed.Processes) -> dict[str, Any] | None:
    """:func:`_checkpoint_to_resume`, agreed by every rank: on several hosts each reads its own
    view of the run folder, and a rank that resumes while another starts over would hang DDP.
    Every rank raises the same error when one refuses or when they found different steps."""
    try:
        ckpt, problem = _checkpoint_to_resume(cfg, run, run_config), None
    except TrainingError as e:
        if not procs.distributed:
            raise
        ckpt, problem = None, str(e)
    seen = distributed.gather_objects((problem, None if ckpt is None else int(ckpt["step"])), procs)
    problems = [p for p, _ in seen if p]
    if problems:
        raise TrainingError(problems[0])
    if len({step for _, step in seen}) > 1:
        found = ", ".join(f"rank {r}: {'none' if s is None else f'step {s}'}"
                          for r, (_, s) in enumerate(seen))
        raise TrainingError(f"The processes found different checkpoints in {run.root} ({found}). "
                            "Across hosts the run folder (--out) must be on storage every host "
                            "sees (e.g. NFS) to resume; or resume on one host.")
    return ckpt


def _checkpoint_to_resume(cfg: TrainConfig, run: RunDir, run_config: dict[str, Any]
                          ) -> dict[str, Any] | None:
    """The checkpoint a run continues from, or None for a fresh run; refuses to overwrite."""
    if not run.config_path.exists():
        if run.root.exists() and any(run.root.iterdir()) and not cfg.resume:
            raise TrainingError(f"Output folder {run.root} is not empty and holds no run; "
                                "choose another --out.")
        return None
    if not cfg.resume:
        raise TrainingError(f"Run directory {run.root} already holds a run; pass --resume to "
                            "continue it or choose another --out.")
    old = run.read_config()
    changed = [k for k in RESUME_FIXED if old.get(k) != run_config.get(k)]
    if changed:
        raise TrainingError(f"Cannot resume {run.root}: {', '.join(changed)} differ from the "
                            "run's config.json. Resume with the same manifest and model "
                            "settings, or choose another --out.")
    if not run.checkpoint_path.exists():
        log(f"No checkpoint in {run.root} yet; starting the run from step 0.")
        return None
    return load_checkpoint(run.checkpoint_path)


#: Adam settings that say how it runs on this device, not what it computes: a resumed run
#: keeps the ones it chose here, not the saved ones (a CPU checkpoint would run unfused on CUDA).
OPTIMIZER_DEVICE_KEYS = ("fused", "foreach", "capturable")


def _restore(ckpt: dict[str, Any], g_net, d_net, ema, opt_g, opt_d, rng: torch.Generator,
             procs: distributed.Processes, seed: int) -> int:
    """Load a checkpoint's states into the networks, optimisers and generator; return its step."""
    g_net.load_state_dict(ckpt["generator"])
    d_net.load_state_dict(ckpt["discriminator"])
    if ema is not None:
        ema.load_state_dict(ckpt["ema"] or ckpt["generator"])
    _load_optimizer(opt_g, ckpt["opt_g"])
    _load_optimizer(opt_d, ckpt["opt_d"])
    _restore_stream(rng, ckpt["rng"], seed, int(ckpt["step"]), procs)
    torch.set_rng_state(ckpt["torch_rng"])  # the global CPU generator's: the same on any device
    return int(ckpt["step"])


def _load_optimizer(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """``opt.load_state_dict(saved)``, keeping this device's choice of kernel. The flags are
    set before loading because loading places Adam's step counters by them (fused: on the
    parameters' device)."""
    groups = [{**old, **{k: now[k] for k in OPTIMIZER_DEVICE_KEYS if k in now}}
              for old, now in zip(saved["param_groups"], opt.param_groups)]
    opt.load_state_dict({**saved, "param_groups": groups})


def _restore_stream(rng: torch.Generator, states: list[torch.Tensor], seed: int, step: int,
                    procs: distributed.Processes) -> None:
    """Continue this rank's batch/noise stream from the checkpoint, or, where it cannot
    continue, start a new one derived from ``seed``, the step and the rank (so the resumed
    run is reproducible, though not identical to an uninterrupted one)."""
    if len(states) != procs.world_size:
        why = f"the checkpoint was written by {len(states)} process(es), now {procs.world_size}"
    elif states[procs.rank].numel() != rng.get_state().numel():
        why = (f"the checkpoint's random-number state ({states[procs.rank].numel()} bytes) was "
               f"written on another kind of device than this {rng.device.type} generator's "
               f"({rng.get_state().numel()} bytes), and a stream cannot continue across devices")
    else:
        rng.set_state(states[procs.rank])
        return
    rng.manual_seed(new_stream_seed(seed, step, procs.rank))
    log(f"Warning: {why}: batches, noise and augmentations continue from a new stream seeded "
        f"by --seed {seed} and step {step}.")


def new_stream_seed(seed: int, step: int, rank: int) -> int:
    """The seed of a rank's batch stream restarted at ``step`` (a 63-bit hash of all three)."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0] >> 1)


def _checkpoint_state(step: int, g_net, d_net, ema, opt_g, opt_d, rng_states: list,
                      cfg: TrainConfig) -> dict[str, Any]:
    return {
        "step": step,
        "model": cfg.model,
        "generator": g_net.state_dict(),
        "discriminator": d_net.state_dict(),
        "ema": ema.state_dict() if ema is not None else {},
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "rng": list(rng_states),
        "torch_rng": torch.get_rng_state(),
    }


def _label_probabilities(cfg: TrainConfig, data: TrainingSet) -> torch.Tensor:
    """Class probabilities for fake labels: uniform, or the training set's class shares."""
    counts = data.class_counts().astype(np.float64)
    if cfg.conditional and cfg.label_dist == "uniform" and (counts == 0).any():
        missing = [data.class_names[i] for i in np.flatnonzero(counts == 0)]
        log(f"Warning: classes {' '.join(missing)} have no training images but are sampled "
            "uniformly; use --label-dist train to leave them out.")
    if cfg.label_dist == "train":
        return torch.from_numpy(counts / counts.sum()).float()
    return torch.full((data.num_classes,), 1.0 / data.num_classes)


def _fixed_noise(cfg: TrainConfig, num_classes: int, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The noise of the sample grids: one row of GRID_COLUMNS per class (64 if unconditional)."""
    g = torch.Generator().manual_seed(cfg.seed + 12_345)
    if cfg.conditional:
        y = torch.arange(num_classes).repeat_interleave(GRID_COLUMNS)
    else:
        y = torch.zeros(GRID_COLUMNS * GRID_COLUMNS, dtype=torch.int64)
    z = torch.randn(len(y), cfg.z_dim, generator=g)
    return z.to(device), y.to(device)


@torch.no_grad()
def _render(g_net, z: torch.Tensor, y: torch.Tensor, autocast) -> torch.Tensor:
    """Generator output for fixed inputs in eval mode (batch-norm running statistics)."""
    was_training = g_net.training
    g_net.eval()
    with autocast:
        out = g_net(z, y).float()
    g_net.train(was_training)
    return out


@torch.no_grad()
def _update_ema(ema, g_net, decay: float) -> None:
    ema_params = list(ema.parameters())
    torch._foreach_lerp_(ema_params, list(g_net.parameters()), 1.0 - decay)
    for e, b in zip(ema.buffers(), g_net.buffers()):
        e.copy_(b)


def _metrics_row(step: int, epoch: float, loss_d, loss_g, logit, aux, y_real, batch: int,
                 speed: float) -> dict[str, Any]:
    """One metrics.csv row from the discriminator step's outputs (probabilities = sigmoid)."""
    logit = logit.detach().float()
    real, fake = logit[:batch], logit[batch:]
    row = {"step": step, "epoch": round(epoch, 4), "loss_d": loss_d.item(),
           "loss_g": loss_g.item(),
           "d_real": torch.sigmoid(real).mean().item(), "d_fake": torch.sigmoid(fake).mean().item(),
           "acc_real": (real > 0).float().mean().item(), "acc_fake": (fake < 0).float().mean().item(),
           "acc_aux": None, "images_per_s": round(speed, 1)}
    if aux is not None:
        row["acc_aux"] = (aux[:batch].detach().argmax(1) == y_real).float().mean().item()
    return row


def _divergence(step: int, loss_d, loss_g, cfg: TrainConfig, run: RunDir,
                last_ckpt_step: int | None) -> TrainingError:
    kept = (f"The last good checkpoint ({run.checkpoint_path}, step {last_ckpt_step}) was kept"
            if last_ckpt_step is not None else "No checkpoint had been written yet")
    return TrainingError(
        f"Training diverged at step {step}: a loss became NaN or infinite "
        f"(loss_d={loss_d.item():.4g}, loss_g={loss_g.item():.4g}). {kept}. Try lower learning "
        f"rates (e.g. --lr-d {cfg.lr_d / 2:g} --lr-g {cfg.lr_g / 2:g}), --augment diffaugment "
        "or --model cgan-proj, and continue with --resume.")


def generation_counts(n_per_class: int, label_probs: torch.Tensor) -> torch.Tensor:
    """Images per class in generated.npz: ``n_per_class × classes`` in all, split by
    ``label_probs`` with largest-remainder rounding (so the shares match the labels the
    generator was trained with, which is what the bias audit compares against)."""
    total = n_per_class * len(label_probs)
    exact = label_probs.double() * total
    counts = exact.floor().long()
    short = total - int(counts.sum())
    if short:
        counts[torch.argsort(exact - counts, descending=True, stable=True)[:short]] += 1
    return counts


def _write_generated(cfg: TrainConfig, run: RunDir, g_net, label_probs: torch.Tensor,
                     device: torch.device, autocast) -> None:
    """generated.npz: n_generate images (conditional models: per class on average, in the
    --label-dist shares: equal for uniform, the training shares for train)."""
    num_classes = len(label_probs)
    if cfg.conditional:
        labels = torch.arange(num_classes).repeat_interleave(
            generation_counts(cfg.n_generate, label_probs.cpu()))
    else:
        labels = torch.full((cfg.n_generate,), -1, dtype=torch.int64)
    images = generate_images(g_net, labels, cfg.z_dim, device, seed=cfg.seed + 777,
                             autocast=autocast)
    run.write_generated(images, labels.numpy())
