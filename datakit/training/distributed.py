"""DDP under ``torchrun``: the same entry point runs as one process or as K.

``torchrun --nproc_per_node=K -m datakit train ...`` sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; :func:`setup` then joins the process group (NCCL on CUDA, gloo on the CPU)
and every process trains on its share of the batch. Only rank 0 writes the run directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Processes:
    """Where this process stands in the job: its rank, the number of processes, its local GPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(use_cuda: bool) -> Processes:
    """Join the process group when launched by torchrun; a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes()
    procs = Processes(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(procs.local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return procs


def teardown(procs: Processes) -> None:
    """Leave the process group (after all ranks are done)."""
    if procs.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, procs: Processes, device: torch.device) -> nn.Module:
    """Wrap a network in DDP when there are several processes (gradients are all-reduced)."""
    if not procs.distributed:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def sync_batchnorm(module: nn.Module, procs: Processes) -> nn.Module:
    """Under DDP, ``module`` with every batch norm computing its statistics over all
    processes' images (SyncBatchNorm, same parameters and buffers); unchanged for one process.
    A generator's batch norm otherwise sees only this process's share of the batch."""
    if not procs.distributed:
        return module
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def gather_objects(obj: Any, procs: Processes) -> list[Any]:
    """Every rank's ``obj`` in rank order (collective: all ranks must call it)."""
    if not procs.distributed:
        return [obj]
    out: list[Any] = [None] * procs.world_size
    dist.all_gather_object(out, obj)
    return out


def any_rank_flag(value: int, procs: Processes, device: torch.device) -> int:
    """The largest ``value`` over all ranks (used to stop every rank when one diverges)."""
    if not procs.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)  # NCCL needs a GPU tensor
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def barrier(procs: Processes) -> None:
    """Wait for all ranks (e.g. until rank 0 has prepared the run directory)."""
    if procs.distributed:
        dist.barrier()
