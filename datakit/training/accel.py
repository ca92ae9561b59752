"""How a run uses its device, decided once: precision, fused Adam, torch.compile, cuDNN
autotuning, how often the finite check makes the host wait for the device, and the batch and
learning rates a run leaves at auto (:func:`resolve_batch`).

The CUDA path is: bf16 autocast on the device's type (losses stay float32), fused Adam,
a finite check every ``log_every`` steps (each check is a host sync; between checks the
loop only records the first bad step on the device), cuDNN autotuning, and torch.compile.
``precision="bf16"`` takes the same path on the CPU — autocast on ``"cpu"``, fused Adam,
the sparse check — so the CPU tests run the code a GPU runs. What they cannot run: cuDNN,
torch.compile's GPU code (Triton), and CUDA autocast's own casting lists (the CPU's cast
fewer ops: the tests apply CUDA's lists, see tests/cuda_autocast.py).
"""
from __future__ import annotations

import contextlib
import math
import shutil
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import torch

from datakit._core.progress import log
from datakit.errors import TrainingError

#: The oldest torch the trainer runs on: torch 2.3's spectral norm calls ``vdot``, which CUDA
#: autocast promotes only from 2.4, so cgan-proj under bf16 fails at its first forward there.
MIN_TORCH = (2, 4)
#: torch.compile's backend; tests set ``aot_eager`` (traces like inductor, compiles no code).
COMPILE_BACKEND = "inductor"
#: The batch of a run that leaves ``batch_size`` at auto, per device type (else
#: :data:`BASE_BATCH`). On a GPU a small model's step is bound by kernel launches, so batch 256
#: costs about what 64 does, and fewer steps win: with the rates doubled it reached 90% label
#: fidelity in 483 steps against 1,112 at batch 64 (bench/ttq, on the CPU, where it took 1.8x
#: the CPU time: so the CPU keeps 64). docs/training.md has the table.
AUTO_BATCH = {"cuda": 256}
#: The batch the learning rates were tuned at, and the rate of both networks there (bench/ttq).
BASE_BATCH = 64
BASE_LR = 1e-3


@dataclass(frozen=True)
class Accel:
    """The resolved device settings of one run (saved in config.json as ``accel``).

    Attributes:
        device_type: ``cuda`` or ``cpu``.
        precision: ``bf16`` (autocast) or ``fp32``.
        fused_adam: Adam's fused kernel (one launch per step, not one per tensor).
        compile: ``off``, ``default`` or ``reduce-overhead`` (asked for; a run that cannot
            compile logs why and trains eagerly).
        finite_check_every: steps between the host syncs that check losses are finite.
        cudnn_benchmark: let cuDNN time its kernels for these fixed shapes (restored after).
    """

    device_type: str
    precision: str
    fused_adam: bool
    compile: str
    finite_check_every: int
    cudnn_benchmark: bool

    def autocast(self) -> torch.autocast:
        """The autocast of the forward passes: bf16 on the device's type, or disabled."""
        return torch.autocast(self.device_type, dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_accel(precision: str, compile_mode: str, log_every: int,
                  device: torch.device) -> Accel:
    """The settings ``precision`` and ``compile`` mean on ``device`` (see the module docstring)."""
    check_torch_version()
    cuda = device.type == "cuda"
    if precision == "auto":
        precision = "bf16" if cuda else "fp32"
    if compile_mode == "auto":
        compile_mode = "default" if cuda else "off"
    # Syncing every step costs little on the CPU, where the host waits for each op anyway.
    sparse = cuda or precision == "bf16"
    return Accel(device_type=device.type, precision=precision,
                 fused_adam=device.type in _fused_devices(), compile=compile_mode,
                 finite_check_every=log_every if sparse else 1, cudnn_benchmark=cuda)


def auto_batch_size(device_type: str) -> int:
    """The batch an auto ``batch_size`` means on this device type (:data:`AUTO_BATCH`)."""
    return AUTO_BATCH.get(device_type, BASE_BATCH)


def auto_learning_rate(batch_size: int) -> float:
    """The rate an auto ``lr_g``/``lr_d`` means at this batch: square-root scaling above
    :data:`BASE_BATCH`, ``BASE_LR × √(batch / BASE_BATCH)``, and ``BASE_LR`` at or below it.
    What the measurement supports: at batch 256, 1e-3 did not reach 90% label fidelity and
    2e-3 (√4 = 2×) did, in fewer steps than batch 64. Nothing was measured below 64, where
    1e-3 has always been the rate (the quick demo trains at batch 16), so it stays."""
    return BASE_LR * math.sqrt(max(batch_size, BASE_BATCH) / BASE_BATCH)


#: Appended to the reason of an auto setting a resumed run took from its config.json.
KEPT = "; kept on resume"


@dataclass(frozen=True)
class BatchSettings:
    """The batch and learning rates a run trains with (its config.json records these).

    Attributes:
        batch_size, lr_g, lr_d: the resolved values (never 0).
        auto: for each setting left at auto, why it has its value, e.g.
            ``{"batch_size": "batch 256: auto on cuda"}`` (config.json's ``accel.auto``).
    """

    batch_size: int
    lr_g: float
    lr_d: float
    auto: dict[str, str]


def resolve_batch(batch_size: int, lr_g: float, lr_d: float, device_type: str,
                  recorded: dict[str, Any] | None = None) -> BatchSettings:
    """The values that ``batch_size``, ``lr_g`` and ``lr_d`` (0: auto) mean on ``device_type``.

    An explicit value is kept as given. An auto batch is :func:`auto_batch_size`; an auto rate
    is :func:`auto_learning_rate` of the resolved batch (explicit or not).

    ``recorded``: the config.json of the run being resumed. There an auto setting keeps the
    value the run recorded, so a run does not change its batch or rates midway because it is
    resumed on another device (it is logged when this device would have chosen otherwise).
    """
    asked = {"batch_size": batch_size, "lr_g": lr_g, "lr_d": lr_d}
    batch = batch_size or auto_batch_size(device_type)
    here = {"batch_size": batch, "lr_g": lr_g or auto_learning_rate(batch),
            "lr_d": lr_d or auto_learning_rate(batch)}
    why = {"batch_size": f"batch {batch}: auto on {device_type}"}
    for name in ("lr_g", "lr_d"):
        rule = (f"{BASE_LR:g} x sqrt({batch}/{BASE_BATCH})" if batch >= BASE_BATCH else
                f"{BASE_LR:g} below batch {BASE_BATCH}")
        why[name] = (f"{name} {here[name]:g}: auto, {rule}"
                     + (f" (batch auto on {device_type})" if not batch_size else ""))
    out = {k: v if v else here[k] for k, v in asked.items()}
    auto = {k: why[k] for k, v in asked.items() if not v}
    if recorded is not None:
        before = (recorded.get("accel") or {}).get("auto") or {}
        differs = []
        for name in auto:
            value = recorded.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                continue  # a config.json without a usable number: resolve as for a new run
            out[name] = recorded[name]
            reason = before.get(name) or (f"{label(name)} {recorded[name]:g}: as the run's "
                                          "config.json recorded it")
            auto[name] = reason if reason.endswith(KEPT) else reason + KEPT
            if recorded[name] != here[name]:
                differs.append(f"{label(name)} {recorded[name]:g} (auto on {device_type} "
                               f"would choose {here[name]:g})")
        if differs:
            log(f"Resuming with the run's recorded {', '.join(differs)}: a run keeps its batch "
                "and learning rates; pass --batch-size, --lr-g, --lr-d to change them.")
    return BatchSettings(int(out["batch_size"]), float(out["lr_g"]), float(out["lr_d"]), auto)


def label(name: str) -> str:
    """How logs name a batch setting: ``batch``, ``lr_g``, ``lr_d``."""
    return "batch" if name == "batch_size" else name


def check_torch_version(version: str | None = None) -> None:
    """Refuse a torch older than :data:`MIN_TORCH` with a sentence saying what to install."""
    version = version or torch.__version__
    found = tuple(int(p) for p in version.split("+")[0].split(".")[:2])
    if found < MIN_TORCH:
        need = ".".join(map(str, MIN_TORCH))
        raise TrainingError(f"datakit train needs torch {need} or newer, found {version} (before "
                            f"{need}, bf16 autocast on CUDA breaks cgan-proj's spectral norm). "
                            f"Install a newer torch: pip install 'torch>={need}'.")


def _fused_devices() -> list[str]:
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    return _get_fused_kernels_supported_devices()


@contextlib.contextmanager
def device_settings(accel: Accel) -> Iterator[None]:
    """Set the process-wide flags the run wants for its duration, and put them back after:
    cudnn.benchmark left on would make later work in the process (a judge's training)
    non-deterministic."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = accel.cudnn_benchmark or before
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def compile_network(module: torch.nn.Module, accel: Accel) -> Callable:
    """``module`` under torch.compile as ``accel.compile`` says, or ``module`` itself when
    compile is off or cannot run here (the reason is logged)."""
    if accel.compile == "off":
        return module
    missing = compile_unavailable(accel.device_type)
    if missing:
        log(f"torch.compile is not used ({missing}); training without it.")
        return module
    return CompiledOrEager(module, accel.compile)


def compile_unavailable(device_type: str) -> str | None:
    """Why torch.compile cannot run on this device here, or None when it can."""
    if not torch._dynamo.is_dynamo_supported():
        return "TorchDynamo does not support this Python or platform"
    if COMPILE_BACKEND != "inductor":
        return None
    if device_type == "cuda":
        from torch.utils._triton import has_triton
        return None if has_triton() else "Triton is not installed"
    if not any(shutil.which(c) for c in ("g++", "clang++", "c++")):
        return "no C++ compiler (g++, clang++) on PATH"
    return None


class CompiledOrEager:
    """A compiled network that falls back to the eager one when compiling fails.

    Compilation happens at the first call of each input shape (the discriminator sees two per
    step); an error during the first training step (an unsupported op, a compiler crash) is
    logged and the run continues eagerly. After :meth:`settle` (the loop calls it once the
    first step is done) errors propagate: by then compiled code has run and changed state.
    """

    def __init__(self, module: torch.nn.Module, mode: str):
        self.module = module
        self.compiled: Callable | None = torch.compile(
            module, mode=None if mode == "default" else mode, backend=COMPILE_BACKEND)
        self._settled = False

    @property
    def active(self) -> bool:
        """True while the compiled network is in use (False after a fallback)."""
        return self.compiled is not None

    def settle(self) -> None:
        """From now on, errors of the compiled network propagate instead of falling back."""
        self._settled = True

    def __call__(self, *args):
        if self.compiled is None:
            return self.module(*args)
        if self._settled:
            return self.compiled(*args)
        try:
            return self.compiled(*args)
        except Exception as e:  # noqa: BLE001 - any compiler failure means: train eagerly
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            log(f"torch.compile failed on the {type(self.module).__name__.lower()} "
                f"({type(e).__name__}: {first}); training without it.")
            self.compiled = None
            return self.module(*args)
