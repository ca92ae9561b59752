"""``datakit train MANIFEST --out RUN_DIR`` and ``datakit sample RUN_DIR --n N``."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from datakit.cli.base import json_option, main, needs_torch, print_json
from datakit.training.config import (AUGMENTS, COMPILE_MODES, DEVICES, LABEL_DISTS, MODELS,
                                     PRECISIONS, TrainConfig)

_D = TrainConfig.__dataclass_fields__  # defaults live only in TrainConfig


def _default(name: str):
    return _D[name].default


@main.command("train")
@click.argument("manifest", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(), help="Run directory to write.")
@click.option("--model", type=click.Choice(MODELS), default=_default("model"), show_default=True,
              help="dcgan (unconditional), acgan (auxiliary classifier) or cgan-proj "
                   "(projection discriminator, spectral norm, hinge loss).")
@click.option("--steps", type=int, default=None,
              help="Optimisation steps (default 2000 when --epochs is not given either).")
@click.option("--epochs", type=float, default=None, help="Passes over the training rows.")
@click.option("--batch-size", type=int, default=_default("batch_size"),
              help="Real images per step (over all processes under torchrun).  "
                   "[default: auto — 64 on CPU, 256 on CUDA; 0 asks for auto]")
@click.option("--lr-g", type=float, default=_default("lr_g"),
              help="Generator learning rate.  [default: auto — 1e-3 × √(batch/64), never under "
                   "1e-3: 1e-3 at batch 64 on CPU, 2e-3 at 256 on CUDA; 0 asks for auto]")
@click.option("--lr-d", type=float, default=_default("lr_d"),
              help="Discriminator learning rate.  [default: auto — as --lr-g]")
@click.option("--beta1", type=float, default=_default("beta1"), show_default=True, help="Adam beta1.")
@click.option("--beta2", type=float, default=_default("beta2"), show_default=True, help="Adam beta2.")
@click.option("--seed", type=int, default=_default("seed"), show_default=True,
              help="Seeds weights, batches, noise, augmentation and sample grids.")
@click.option("--z-dim", type=int, default=_default("z_dim"), show_default=True, help="Noise length.")
@click.option("--width", type=int, default=_default("width"), show_default=True,
              help="Channel multiplier of both networks.")
@click.option("--augment", type=click.Choice(AUGMENTS), default=_default("augment"),
              show_default=True, help="diffaugment: colour/translation/cutout on real and fake.")
@click.option("--ema/--no-ema", default=_default("ema"), show_default=True,
              help="Sample from an exponential moving average of the generator.")
@click.option("--ema-decay", type=float, default=_default("ema_decay"), show_default=True,
              help="EMA decay per step.")
@click.option("--label-dist", type=click.Choice(LABEL_DISTS), default=_default("label_dist"),
              show_default=True, help="Labels of conditional fakes: uniform, or the training "
                                      "set's class shares (recorded in config.json).")
@click.option("--device", type=click.Choice(DEVICES), default=_default("device"),
              show_default=True, help="auto uses CUDA when present.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=_default("precision"),
              show_default=True, help="auto: bf16 autocast on CUDA, float32 on the CPU; bf16 "
                                      "takes the CUDA path (autocast, fused Adam) on any device.")
@click.option("--compile", type=click.Choice(COMPILE_MODES), default=_default("compile"),
              show_default=True, help="torch.compile: auto is on for CUDA where it works, off "
                                      "on the CPU; reduce-overhead adds CUDA graphs.")
@click.option("--sync-batchnorm/--no-sync-batchnorm", default=_default("sync_batchnorm"),
              show_default=True, help="Under torchrun on GPUs: batch-norm statistics over all "
                                      "processes' images.")
@click.option("--sample-every", type=int, default=_default("sample_every"), show_default=True,
              help="Steps between fixed-noise sample grids.")
@click.option("--log-every", type=int, default=_default("log_every"), show_default=True,
              help="Steps between metrics.csv rows.")
@click.option("--n-generate", type=int, default=_default("n_generate"), show_default=True,
              help="Images in generated.npz (per class for conditional models, split by "
                   "--label-dist shares).")
@click.option("--checkpoint-every", type=int, default=_default("checkpoint_every"),
              show_default=True, help="Steps between checkpoints/last.pt writes.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--probe-every", type=int, default=_default("probe_every"), show_default=True,
              help="Every N steps log probe_label_fidelity / probe_fd of a few generated "
                   "images read by a small judge (0: off).")
@click.option("--probe-samples", type=int, default=_default("probe_samples"), show_default=True,
              help="Generated images per probe.")
@click.option("--plateau-patience", type=int, default=_default("plateau_patience"),
              show_default=True, help="Stop after this many probes without improvement "
                                      "(0: never stop early).")
@click.option("--plateau-tolerance", type=float, default=_default("plateau_tolerance"),
              show_default=True, help="Relative improvement a probe must make to count.")
@json_option("an object: run_dir, config (the resolved settings of config.json)")
def train_cmd(manifest, as_json, **options):
    """Train a GAN on MANIFEST's training rows and write a run directory.

    The run directory holds config.json, metrics.csv, samples/step_NNNNNN.png,
    training.gif, checkpoints/last.pt and generated.npz (read by `datakit audit`).
    Under `torchrun --nproc_per_node=K` the same command trains with DDP.

    \b
    Example:
        datakit train data_manifests/mnist-train.parquet --out runs/acgan --steps 3000
        datakit train data_manifests/chars74k-goodimg.parquet --out runs/proj \\
            --model cgan-proj --augment diffaugment --ema
        torchrun --nproc_per_node=2 -m datakit train m.parquet --out runs/ddp
        datakit train m.parquet --out runs/bf16 --precision bf16   # the GPU path, on the CPU
    """
    needs_torch("train")
    from datakit.training import train

    run_dir = train(TrainConfig(manifest=manifest, **options))
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
        return
    if as_json:
        config = Path(run_dir, "config.json")
        print_json({"run_dir": str(run_dir),
                    "config": json.loads(config.read_text()) if config.exists() else None})
    else:
        click.echo(f"Wrote {run_dir}")


@main.command("sample")
@click.argument("run_dir", type=click.Path())
@click.option("--n", "-n", "n", type=int, required=True, help="Number of images.")
@click.option("--class", "class_name", default=None,
              help="Only this class (a class name, e.g. 7 or A); conditional models only.")
@click.option("--out", "-o", type=click.Path(), default=None,
              help=".npz (images, labels) or .png grid (default: RUN_DIR/samples/...).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="auto uses CUDA when present.")
@json_option("an object: run_dir, out, n, class")
def sample_cmd(run_dir, n, class_name, out, seed, device, as_json):
    """Draw N new images from RUN_DIR's last checkpoint (EMA weights if kept).

    \b
    Example:
        datakit sample runs/acgan -n 100 --class 7 --out sevens.png
    """
    needs_torch("sample")
    from datakit.training import sample

    path = sample(run_dir, n, class_name=class_name, out=out, seed=seed, device=device)
    if as_json:
        print_json({"run_dir": str(run_dir), "out": str(path), "n": n, "class": class_name})
    else:
        click.echo(f"Wrote {path}")
