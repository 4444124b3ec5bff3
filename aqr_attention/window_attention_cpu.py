"""The compiled CPU kernel of AQR's window attentions.

`local_bias_attention` and `local_window_attention` need sums over each query's window
keys. `csrc/window_attention_cpu.cpp` walks every (query, head)'s window rows directly,
in float32 (AVX2 when the build machine has it) or float64. The pure-PyTorch route
(`grouped_route.py`) computes the same numbers; which one runs is
decided in `backends.py`. The extension is built by `pip install -e .`
(setup.py).
"""
import os.path as osp
import warnings
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

try:
    from . import _window_attention_cpu as _ext
    IMPORT_ERROR = None
except ImportError as err:  # not built: the callers take their pure-PyTorch route
    _ext, IMPORT_ERROR = None, err
    warnings.warn(f'aqr_attention: the CPU window kernel is not built ({err}); AQR attention takes the '
                  'slower pure-PyTorch route. Build it with `pip install --no-build-isolation '
                  '--use-pep517 -e .` (tools/setup_env.sh does).')
else:
    _source = osp.join(osp.dirname(__file__), 'csrc', 'window_attention_cpu.cpp')
    if osp.exists(_source) and osp.getmtime(_source) > osp.getmtime(_ext.__file__):
        warnings.warn(f'aqr_attention: {_source} is newer than its build {_ext.__file__}; rebuild '
                      'with `pip install --no-build-isolation --use-pep517 -e .`')


def kernel_available() -> bool:
    """True when the compiled extension is importable."""
    return _ext is not None


class PackedWindows(NamedTuple):
    """The kernel's view of `KeyGrid.window_parts`."""
    meta: Tensor     # [P, 6] int64: offset, rows, cols, block, radius, weight index
    centres: Tensor  # [P, 4, B, Q] int64: window centre row, col, has a window, visit order


def _locality_order(part) -> Tensor:
    """[B, Q] queries in bands of one window's height, left to right within a band:
    consecutive queries then share most of their window keys (cache reuse)."""
    band = part.row // (2 * part.radius + 1)
    return torch.argsort(band * part.cols + part.col, dim=1, stable=True)


def pack_windows(parts) -> PackedWindows:
    """window parts -> the kernel's two int64 tensors."""
    meta = torch.tensor([[p.offset, p.rows, p.cols, p.block, p.radius, p.index] for p in parts],
                        dtype=torch.long)
    centres = torch.stack([torch.stack([p.row.long(), p.col.long(), p.has.long(), _locality_order(p)])
                           for p in parts])
    return PackedWindows(meta, centres.cpu().contiguous())


def as_key_buffer(x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """`dtype` (the kernel's: float32 or float64) with a unit stride on the last dim (any
    other strides are fine)."""
    x = x.to(dtype)
    return x if x.stride(-1) == 1 else x.contiguous()


def _mask(mask: Optional[Tensor], shape: Tuple[int, ...], dtype: torch.dtype) -> Optional[Tensor]:
    """The additive key-padding mask [B, 1, 1, K] as the [B, h, Q, K] view the kernel
    reads (heads and queries get stride 0)."""
    return None if mask is None else mask.to(dtype).expand(*shape)


def correction_forward(qs: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], windows: PackedWindows,
                       weight: Tensor, lse0: Tensor) -> List[Tensor]:
    """(sum_w w p0 [B, h, Q], sum_w w p0 v [B, h, Q, d]) over the window keys, with
    p0 = exp(s - lse0) and w = weight[part, b, q]; qs already scaled."""
    shape, dt = (*qs.shape[:3], k.shape[2]), qs.dtype
    return _ext.correction_forward(qs.contiguous(), as_key_buffer(k, dt), as_key_buffer(v, dt), _mask(mask, shape, dt),
                                   *windows, weight.to(dt).contiguous(), lse0.to(dt).contiguous())


def softmax_forward(qs: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor],
                    windows: PackedWindows) -> List[Tensor]:
    """(out [B, h, Q, d], lse [B, h, Q]) of softmax over the window keys only."""
    shape, dt = (*qs.shape[:3], k.shape[2]), qs.dtype
    return _ext.softmax_forward(qs.contiguous(), as_key_buffer(k, dt), as_key_buffer(v, dt), _mask(mask, shape, dt),
                                *windows)


def window_backward(qs: Tensor, k: Tensor, v: Tensor, go: Tensor, row_term: Tensor, lse: Tensor,
                    mask: Optional[Tensor], windows: PackedWindows, weight: Tensor, dq: Tensor,
                    dk: Tensor, dv: Tensor) -> Tensor:
    """Adds w dS k to dq, w dS qs to dk and w p go to dv (in place: dq contiguous, dk / dv
    of qs's dtype with unit last stride) on the window keys, p = exp(s - lse); returns
    db [2, B, Q] = (w + 1) * the window's sum of dS per part, over heads and keys (the same
    interface as `grouped_route.group_window_backward`)."""
    shape, dt = (*qs.shape[:3], k.shape[2]), qs.dtype
    return _ext.window_backward(qs.contiguous(), as_key_buffer(k, dt), as_key_buffer(v, dt), go.to(dt).contiguous(),
                                row_term.to(dt).contiguous(), lse.to(dt).contiguous(), _mask(mask, shape, dt),
                                *windows, weight.to(dt).contiguous(), dq, dk, dv).sum(2)


class KernelWindows:
    """The compiled kernel's route: the window terms of both attentions (the same
    interface as the pure-PyTorch `grouped_route.GroupedWindows`)."""

    def __init__(self, parts):
        self.packed = pack_windows(parts)

    def corrections(self, qs, k, v, mask, weight, lse0):
        return correction_forward(qs, k, v, mask, self.packed, weight, lse0)

    def softmax(self, qs, k, v, mask):
        return softmax_forward(qs, k, v, mask, self.packed)

    def backward(self, qs, k, v, go, row_term, lse, mask, weight, dq, dk, dv) -> Tensor:
        return window_backward(qs, k, v, go, row_term, lse, mask, self.packed, weight, dq, dk, dv)
