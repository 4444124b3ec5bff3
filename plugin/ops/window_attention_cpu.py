"""The compiled CPU kernel of AQR's window attentions, and when to use it.

`local_bias_attention` and `local_window_attention` need sums over each query's window
keys. `csrc/window_attention_cpu.cpp` walks every (query, head)'s window rows directly;
the pure-PyTorch route (`window_groups.py`: grouped boxes and matmuls) computes
the same numbers and remains the route on CUDA, when the extension is not built, or when
`kernel_disabled()` is active (tests check that both routes agree with the dense
reference). The extension is built by `pip install -e .` (setup.py).
"""
import contextlib
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
    warnings.warn(f'plugin.ops: the CPU window kernel is not built ({err}); AQR attention takes the '
                  'slower pure-PyTorch route. Build it with `pip install --no-build-isolation '
                  '--use-pep517 -e .` (tools/setup_env.sh does).')
else:
    _source = osp.join(osp.dirname(__file__), 'csrc', 'window_attention_cpu.cpp')
    if osp.exists(_source) and osp.getmtime(_source) > osp.getmtime(_ext.__file__):
        warnings.warn(f'plugin.ops: {_source} is newer than its build {_ext.__file__}; rebuild '
                      'with `pip install --no-build-isolation --use-pep517 -e .`')

_disabled = False


def kernel_available() -> bool:
    """True when the compiled extension is importable."""
    return _ext is not None


def use_kernel(x: Tensor) -> bool:
    """Whether the window terms of attention on `x` run in the compiled kernel."""
    return _ext is not None and not _disabled and x.device.type == 'cpu'


@contextlib.contextmanager
def kernel_disabled():
    """Forces the pure-PyTorch route inside the block (tests and benchmarks compare them)."""
    global _disabled
    before, _disabled = _disabled, True
    try:
        yield
    finally:
        _disabled = before


class PackedWindows(NamedTuple):
    """The kernel's view of `window_groups.WindowPart`s."""
    meta: Tensor     # [P, 6] int64: offset, rows, cols, block, radius, weight index
    centres: Tensor  # [P, 4, B, Q] int64: window centre row, col, has a window, visit order


def _locality_order(part) -> Tensor:
    """[B, Q] queries in bands of one window's height, left to right within a band:
    consecutive queries then share most of their window keys (cache reuse)."""
    band = part.row // (2 * part.radius + 1)
    return torch.argsort(band * part.cols + part.col, dim=1, stable=True)


def pack_windows(parts) -> PackedWindows:
    """`window_groups.window_parts` -> the kernel's two int64 tensors."""
    meta = torch.tensor([[p.offset, p.rows, p.cols, p.block, p.radius, p.index] for p in parts],
                        dtype=torch.long)
    centres = torch.stack([torch.stack([p.row.long(), p.col.long(), p.has.long(), _locality_order(p)])
                           for p in parts])
    return PackedWindows(meta, centres.cpu().contiguous())


def as_key_buffer(x: Tensor) -> Tensor:
    """float32 with a unit stride on the last dim (any other strides are fine)."""
    x = x.float()
    return x if x.stride(-1) == 1 else x.contiguous()


def _mask(mask: Optional[Tensor], shape: Tuple[int, ...]) -> Optional[Tensor]:
    """Additive mask as a float32 [B, h, Q, K] view (broadcast dims get stride 0)."""
    return None if mask is None else mask.float().expand(*shape)


def correction_forward(qs: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], windows: PackedWindows,
                       weight: Tensor, lse0: Tensor) -> List[Tensor]:
    """(sum_w w p0 [B, h, Q], sum_w w p0 v [B, h, Q, d]) over the window keys, with
    p0 = exp(s - lse0) and w = weight[part, b, q]; qs already scaled."""
    shape = (*qs.shape[:3], k.shape[2])
    return _ext.correction_forward(qs.contiguous(), as_key_buffer(k), as_key_buffer(v), _mask(mask, shape), *windows,
                                   weight.float().contiguous(), lse0.float().contiguous())


def softmax_forward(qs: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor],
                    windows: PackedWindows) -> List[Tensor]:
    """(out [B, h, Q, d], lse [B, h, Q]) of softmax over the window keys only."""
    shape = (*qs.shape[:3], k.shape[2])
    return _ext.softmax_forward(qs.contiguous(), as_key_buffer(k), as_key_buffer(v), _mask(mask, shape), *windows)


def window_backward(qs: Tensor, k: Tensor, v: Tensor, go: Tensor, row_term: Tensor, lse: Tensor,
                    mask: Optional[Tensor], windows: PackedWindows, weight: Tensor, dq: Tensor,
                    dk: Tensor, dv: Tensor) -> Tensor:
    """Adds w dS k to dq, w dS qs to dk and w p go to dv (in place: dq contiguous, dk / dv
    float32 with unit last stride) on the window keys, p = exp(s - lse); returns
    db [2, B, Q] = (w + 1) * the window's sum of dS per part, over heads and keys (the same
    interface as the grouped route's `window_groups.group_window_backward`)."""
    shape = (*qs.shape[:3], k.shape[2])
    return _ext.window_backward(qs.contiguous(), as_key_buffer(k), as_key_buffer(v), go.float().contiguous(),
                                row_term.float().contiguous(), lse.float().contiguous(),
                                _mask(mask, shape), *windows, weight.float().contiguous(), dq, dk, dv).sum(2)
