"""CUDA autocast's casting lists, applied on the CPU: a test helper.

CPU autocast casts fewer ops than CUDA autocast. It keeps ``mv``, ``addmv``, ``addr``,
``einsum`` and a few more in float32 where CUDA runs them in bf16, and its promote list lacks
``dot`` and ``vdot``. A network can therefore run under CPU autocast and fail under CUDA's:
spectral norm (cgan-proj) computes ``torch.vdot(u, torch.mv(W, v))`` with ``u`` a float32
buffer; CUDA casts ``mv`` to bf16, and ``vdot`` refuses mixed dtypes unless autocast promotes
it (CUDA does from torch 2.4).

:class:`CudaCasting` is a ``TorchFunctionMode``: while CPU autocast is on, every op called
through torch's Python API (``torch.*``, ``Tensor`` methods, ``torch.nn.functional``) first
gets its inputs cast as CUDA autocast would cast them:

* ops of CUDA's lower-precision list: floating inputs (not float64) to bf16;
* ops of its float32 list (and ``norm``): floating inputs to float32;
* ops of its "float32 unless a dtype is given" list (``sum``, ``softmax``, ...): ``dtype=float32``
  when the first input is bf16 or float16;
* ops of its promote list: floating inputs to their widest dtype.

Then CPU autocast itself runs (it casts convolutions and linear layers to bf16, as CUDA's).
The lists are read from the installed torch's ``ATen/autocast_mode.h`` (the macros CUDA's
autocast registers from), or, where torch ships no headers, from the copy below (torch 2.13).

What this covers: each op called through torch's API from our code or from torch's own
modules on the way (``nn.Conv2d`` -> ``torch.conv2d``, spectral norm's ``torch.mv`` and
``torch.vdot``); ``CudaCasting.cast`` records which ones it changed, so a test can say what
it covered. What it does not: ops inside a torch function that the mode saw whole (the norm
inside ``F.normalize``, ``cross_entropy``'s ``log_softmax`` + ``nll_loss``: CPU autocast's
rules apply there; the losses take float32 inputs, so nothing differs for them), the
backward pass (autocast does not act there on CUDA either) and CUDA's kernels themselves
(cuDNN, accumulation order): bf16 values round alike, sums may differ in the last bits.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

_FLOATS = (torch.float16, torch.bfloat16, torch.float32)

# torch 2.13's lists (ATen/autocast_mode.h), used when the header is not installed.
_COPY = {
    "lower": "_convolution conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d "
             "conv_transpose3d convolution prelu addmm addmv addr matmul einsum mm mv "
             "linalg_vecdot linear addbmm baddbmm bmm chain_matmul linalg_multi_dot "
             "_thnn_fused_lstm_cell _thnn_fused_gru_cell lstm_cell gru_cell rnn_tanh_cell "
             "rnn_relu_cell _scaled_dot_product_flash_attention scaled_dot_product_attention",
    "fp32": "acos asin cosh erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt sinh tan pow "
            "softplus layer_norm native_layer_norm rms_norm group_norm frobenius_norm "
            "nuclear_norm cosine_similarity poisson_nll_loss cosine_embedding_loss nll_loss "
            "nll_loss2d hinge_embedding_loss kl_div l1_loss smooth_l1_loss huber_loss mse_loss "
            "margin_ranking_loss multilabel_margin_loss soft_margin_loss triplet_margin_loss "
            "multi_margin_loss binary_cross_entropy_with_logits dist pdist cdist renorm "
            "logsumexp upsample_nearest1d _upsample_nearest_exact1d upsample_nearest2d "
            "_upsample_nearest_exact2d upsample_nearest3d _upsample_nearest_exact3d "
            "upsample_linear1d upsample_bilinear2d _upsample_bilinear2d_aa "
            "upsample_trilinear3d upsample_bicubic2d _upsample_bicubic2d_aa norm",
    "fp32_dtype": "prod softmax log_softmax cumprod cumsum linalg_vector_norm "
                  "linalg_matrix_norm sum",
    "promote": "addcdiv addcmul atan2 bilinear cross dot vdot grid_sampler index_put "
               "tensordot scatter_add",
}
_MACROS = {"lower": "AT_FORALL_LOWER_PRECISION_FP", "fp32": "AT_FORALL_FP32",
           "fp32_dtype": "AT_FORALL_FP32_SET_OPT_DTYPE", "promote": "AT_FORALL_PROMOTE"}


def cuda_lists() -> dict[str, set[str]]:
    """CUDA autocast's op names by policy, from the installed torch's header when present."""
    header = Path(torch.__file__).parent / "include" / "ATen" / "autocast_mode.h"
    text = header.read_text() if header.exists() else ""
    lists = {}
    for policy, macro in _MACROS.items():
        body = re.search(rf"#define {macro}\(_\)(.*?)\n\n", text, re.S)
        names = set(re.findall(r"_\((\w+)", body.group(1))) if body else set()
        lists[policy] = names or set(_COPY[policy].split())
    if text:
        lists["fp32"].add("norm")  # registered apart (AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE)
    return lists


class CudaCasting(TorchFunctionMode):
    """Cast op inputs as CUDA autocast would, while CPU autocast is on (see the module doc).

    Args:
        without_promote: op names to leave out of the promote list (to replay an older torch:
            torch 2.3's CUDA autocast did not promote ``vdot``).
    Attributes:
        cast: the op names this mode changed an input of, by policy (what the run covered).
    """

    def __init__(self, without_promote: tuple[str, ...] = ()):
        super().__init__()
        self.lists = cuda_lists()
        self.lists["promote"] -= set(without_promote)
        self.cast: dict[str, set[str]] = {p: set() for p in self.lists}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not torch.is_autocast_enabled("cpu"):
            return func(*args, **kwargs)
        name = getattr(func, "__name__", "").strip("_")  # Tensor.__matmul__ -> matmul
        name = "matmul" if name == "rmatmul" else name
        for policy, names in self.lists.items():
            if name in names:
                args, kwargs = self._apply(policy, name, args, kwargs)
                break
        return func(*args, **kwargs)

    def _apply(self, policy: str, name: str, args, kwargs):
        tensors = [t for t in _flat(args, kwargs) if _eligible(t)]
        if not tensors:
            return args, kwargs
        if policy == "fp32_dtype":
            first = tensors[0]
            if first.dtype in (torch.float16, torch.bfloat16) and kwargs.get("dtype") is None:
                self.cast[policy].add(name)
                kwargs = {**kwargs, "dtype": torch.float32}
            return args, kwargs
        if policy == "promote":
            to = max((t.dtype for t in tensors), key=_FLOATS.index)
        else:
            to = torch.bfloat16 if policy == "lower" else torch.float32
        if any(t.dtype != to for t in tensors):
            self.cast[policy].add(name)
        return _map(args, to), {k: v if k == "out" else _map(v, to) for k, v in kwargs.items()}


def _eligible(t) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype in _FLOATS


def _flat(args, kwargs):
    for a in list(args) + [v for k, v in kwargs.items() if k != "out"]:
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a


def _map(x, to):
    if isinstance(x, (list, tuple)):
        return type(x)(_map(v, to) for v in x)
    return x.to(to) if _eligible(x) else x


class CudaAutocast:
    """CPU bf16 autocast with CUDA's casting lists: a reusable context manager, like the
    ``torch.autocast`` object the training loop enters every step. ``casting.cast`` lists
    what was cast over all its uses."""

    def __init__(self, without_promote: tuple[str, ...] = ()):
        self.casting = CudaCasting(without_promote)
        self._stack: list = []

    def __enter__(self):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        autocast.__enter__()
        self.casting.__enter__()
        self._stack.append(autocast)
        return self

    def __exit__(self, *exc):
        self.casting.__exit__(*exc)
        return self._stack.pop().__exit__(*exc)
