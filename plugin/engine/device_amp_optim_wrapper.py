"""`DeviceAmpOptimWrapper`: mmengine's AmpOptimWrapper that also runs on a CPU.

On CUDA (and NPU / MLU / MUSA) it *is* `AmpOptimWrapper`: fp16 autocast with loss
scaling. On a CPU mmengine's wrapper refuses to start (its __init__ asserts an
accelerator), although `mmengine.runner.amp.autocast` supports CPU bfloat16. This
subclass is the one place that works around it: on a CPU that computes bfloat16 natively
(AVX512-BF16 or AMX) it autocasts to bfloat16 and uses no loss scaler (bfloat16 keeps
float32's exponent range, so gradients do not underflow the way fp16's do); on a CPU
without it (e.g. AVX2 only), where torch emulates bfloat16 about 100x slower than
float32, it trains in float32 and warns once, naming the CPU capability. Otherwise it
behaves like the plain `OptimWrapper`. Used by the synthetic triplane config so that
mixed precision runs where the hardware has it, on any machine.
"""
import warnings
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmdet3d.registry import OPTIM_WRAPPERS


def _accelerator_available() -> bool:
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()


def cpu_has_native_bf16() -> bool:
    """True when torch computes bfloat16 in hardware here: the CPU has AVX512-BF16 or AMX
    tiles and torch dispatches to its AVX-512 kernels (not when ATEN_CPU_CAPABILITY caps
    it at AVX2)."""
    if torch.backends.cpu.get_cpu_capability() in ('DEFAULT', 'NO AVX', 'AVX2'):
        return False
    checks = [getattr(torch.cpu, name, None) for name in ('_is_avx512_bf16_supported', '_is_amx_tile_supported')]
    return any(check() for check in checks if check is not None)


@OPTIM_WRAPPERS.register_module()
class DeviceAmpOptimWrapper(AmpOptimWrapper):
    """AmpOptimWrapper on an accelerator; bfloat16 autocast without loss scaling on a CPU."""

    def __init__(self, loss_scale: Union[str, float, dict] = 'dynamic', dtype: Union[str, torch.dtype] = None,
                 use_fsdp: bool = False, **kwargs):
        if _accelerator_available():
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(f'optim_wrapper.dtype={dtype!r}: on a CPU, DeviceAmpOptimWrapper autocasts to '
                             'bfloat16 only (what torch supports there); leave dtype unset')
        OptimWrapper.__init__(self, **kwargs)   # skips AmpOptimWrapper's accelerator assert
        self.loss_scaler = None
        self._scale_update_param = None
        self.cast_dtype = torch.bfloat16 if cpu_has_native_bf16() else None
        if self.cast_dtype is None:
            warnings.warn(f'DeviceAmpOptimWrapper: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no '
                          'native bfloat16 (AVX512-BF16 / AMX), where bfloat16 autocast is ~100x slower than '
                          'float32: training in float32', stacklevel=2)

    @contextmanager
    def optim_context(self, model):
        if self.loss_scaler is None and self.cast_dtype is None:   # CPU without native bf16: float32
            with OptimWrapper.optim_context(self, model):
                yield
            return
        with super().optim_context(model):
            yield

    def backward(self, loss: torch.Tensor, **kwargs):
        if self.loss_scaler is None:
            return OptimWrapper.backward(self, loss, **kwargs)
        return super().backward(loss, **kwargs)

    def step(self, **kwargs):
        if self.loss_scaler is None:
            return OptimWrapper.step(self, **kwargs)
        return super().step(**kwargs)

    def state_dict(self) -> dict:
        if self.loss_scaler is None:
            return OptimWrapper.state_dict(self)
        return super().state_dict()

    def load_state_dict(self, state_dict: dict):
        if self.loss_scaler is None:
            state_dict.pop('loss_scaler', None)   # a checkpoint from a GPU run
            return OptimWrapper.load_state_dict(self, state_dict)
        return super().load_state_dict(state_dict)
