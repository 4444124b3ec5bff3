"""Precision policy of AQR's attention routes: softmax statistics and window sums are
accumulated in float32 (float64 for float64 inputs) whatever the input dtype, and the
result is returned in the input dtype. Under autocast (mmengine's AmpOptimWrapper, fp16
or bf16) half-precision scores would lose the log-sum-exp and the small window
corrections, so the routes run with autocast off and cast themselves."""
import functools

import torch
from torch import Tensor


def compute_dtype(x: Tensor) -> torch.dtype:
    """float64 for float64 inputs, float32 for float32 / float16 / bfloat16."""
    return torch.promote_types(x.dtype, torch.float32)


def autocast_off(fn):
    """Runs an autograd Function's forward / backward with autocast disabled."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        device = next(a.device.type for a in args if isinstance(a, Tensor))
        with torch.autocast(device, enabled=False):
            return fn(ctx, *args)
    return wrapper


#: input dtypes every route of the attentions takes
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_dtypes(**tensors: Tensor) -> None:
    """A TypeError naming the argument and its dtype unless it is one of `DTYPES`."""
    for name, x in tensors.items():
        if x is not None and x.dtype not in DTYPES:
            raise TypeError(f'AQR attention takes float16, bfloat16, float32 or float64 tensors; '
                            f'{name} is {x.dtype}')
