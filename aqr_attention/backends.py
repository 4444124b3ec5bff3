"""Which implementation computes AQR's window attentions, decided in one place.

Three back-ends compute the same exact numbers:

    'cpu_kernel'  the compiled C++ kernel (`csrc/window_attention_cpu.cpp`):
                  window corrections of PyTorch's fused CPU attention. CPU tensors only.
    'triton'      one Triton kernel per pass that adds the bias inside the window while
                  it walks all keys (`triton_bias_attention.py`). CUDA tensors, or CPU
                  tensors when TRITON_INTERPRET=1 was set before triton was imported
                  (how the CPU test suite checks the GPU kernel).
    'torch'       pure PyTorch (`grouped_route.py` + `lse_attention.py`): the reference
                  route, for any device.

'auto' (the default) takes 'triton' on CUDA for what the compiled kernels support
(`triton_configs.py`: float16 / bfloat16 / float32 / float64, heads up to 128 wide, the
GPU generations the kernels are compiled and checked for, int32 offsets) and otherwise
'torch' with one warning naming the reason; 'cpu_kernel' on CPU when the extension is
built, else 'torch'. The LAM two-window attention of the AQR layer
has no Triton kernel: under 'triton' it takes the 'torch' route on CUDA (the CPU kernel
on CPU under 'auto').

    from aqr_attention import attention_backend
    with attention_backend('torch'):
        model(...)

or, for a whole run (e.g. through tools/dist_train.sh), the environment variable
AQR_ATTENTION_BACKEND=torch.
"""
import contextlib
import importlib.util
import os
import warnings
from typing import Optional

from torch import Tensor

from . import window_attention_cpu
from .grouped_route import GroupedWindows

BACKENDS = ('auto', 'cpu_kernel', 'triton', 'torch')
ENV_VAR = 'AQR_ATTENTION_BACKEND'


def _check(name: str, source: str = 'attention backend') -> str:
    if name not in BACKENDS:
        raise ValueError(f'unknown {source} {name!r}; choose one of {BACKENDS}')
    return name


_current = _check(os.environ.get(ENV_VAR, 'auto'), ENV_VAR)


def set_attention_backend(name: str) -> str:
    """Sets the back-end for the whole process; returns the previous one."""
    global _current
    before, _current = _current, _check(name)
    return before


def get_attention_backend() -> str:
    return _current


@contextlib.contextmanager
def attention_backend(name: str):
    """Forces back-end `name` inside the block (see the module docstring)."""
    before = set_attention_backend(name)
    try:
        yield
    finally:
        set_attention_backend(before)


def triton_available() -> bool:
    """True when the triton package is installed (imported lazily by the Triton route)."""
    return importlib.util.find_spec('triton') is not None


def triton_interpreted() -> bool:
    """True when Triton kernels run in the interpreter (CPU tensors)."""
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


def triton_unsupported_reason(q: Tensor, k: Optional[Tensor] = None, v: Optional[Tensor] = None,
                              mask: Optional[Tensor] = None) -> Optional[str]:
    """Why the compiled Triton kernels cannot take these CUDA tensors, or None."""
    if not triton_available():
        return 'triton is not installed'
    from .triton_configs import unsupported_reason
    return unsupported_reason(q, q if k is None else k, q if v is None else v, mask)


_warned = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, stacklevel=3)


def bias_attention_backend(q: Tensor, k: Optional[Tensor] = None, v: Optional[Tensor] = None,
                           mask: Optional[Tensor] = None) -> str:
    """The back-end of `local_bias_attention` on these tensors (k, v and mask refine the
    checks of the Triton route). Under 'auto', CUDA tensors the Triton kernels cannot take
    (`triton_configs.unsupported_reason`) take the PyTorch route, with one warning per
    reason; a forced back-end that cannot run here is an error naming what is missing."""
    name, device = _current, q.device.type
    if name == 'auto':
        if device == 'cuda':
            reason = triton_unsupported_reason(q, k, v, mask)
            if reason is None:
                return 'triton'
            _warn_once(f'AQR attention: the Triton kernels cannot take these inputs ({reason}); '
                       'using the PyTorch route')
            return 'torch'
        if device == 'cpu' and window_attention_cpu.kernel_available():
            return 'cpu_kernel'
        return 'torch'
    if name == 'cpu_kernel':
        if device != 'cpu':
            raise ValueError(f"attention backend 'cpu_kernel' needs CPU tensors, got {device}")
        if not window_attention_cpu.kernel_available():
            raise RuntimeError(f'the compiled window kernel is not built ({window_attention_cpu.IMPORT_ERROR}); '
                               'build it with `pip install --no-build-isolation --use-pep517 -e .`')
    if name == 'triton':
        if not triton_available():
            raise RuntimeError("attention backend 'triton' needs the triton package (CUDA builds of torch bring it)")
        if device == 'cpu' and not triton_interpreted():
            raise RuntimeError("attention backend 'triton' on CPU tensors needs TRITON_INTERPRET=1 set before "
                               'triton is imported')
        if device == 'cuda':
            reason = triton_unsupported_reason(q, k, v, mask)
            if reason is not None:
                raise RuntimeError(f"attention backend 'triton' cannot take these inputs: {reason}")
    return name


def window_attention_backend(x: Tensor) -> str:
    """The back-end of the LAM's `local_window_attention`: 'cpu_kernel' or 'torch'."""
    if _current == 'cpu_kernel':
        return bias_attention_backend(x)            # the same checks: CPU tensors, built kernel
    if _current == 'auto' and x.device.type == 'cpu' and window_attention_cpu.kernel_available():
        return 'cpu_kernel'
    return 'torch'


def window_route(backend: str, parts, heads: int, head_dim: int, budget: int):
    """The route object that computes the window terms under `backend` ('cpu_kernel' or
    'torch'): `window_attention_cpu.KernelWindows` or `grouped_route.GroupedWindows`, both
    with `corrections`, `softmax` and `backward`. Chosen here, once per attention call;
    nothing downstream asks which one it got."""
    if backend == 'cpu_kernel':
        return window_attention_cpu.KernelWindows(parts)
    if backend == 'torch':
        return GroupedWindows(parts, heads, head_dim, budget)
    raise ValueError(f'the {backend!r} back-end has no window route')
