"""What the Triton kernels of `local_bias_attention` support, and how they are launched.

Imports torch alone, so the back-end choice (`backends.py`) can ask it without importing
triton.

Launch configurations follow the structure of Triton's fused-attention tutorial: one
(query block, key block, warps, pipeline stages) per kernel, chosen per precision and head
width. They are fixed, not autotuned, so that a run is bit-reproducible on one GPU model.
Every entry compiles for sm_80 (A100) and sm_90 (H100) without local-memory spills
(float16, bfloat16, float32) and within the shared memory of every 8.x and 9.0 GPU (all
four dtypes), with and without a key-padding mask; `triton_compile.py` compiles them offline
(no GPU needed) and the CPU test suite checks that, and runs every entry numerically in
Triton's interpreter.

  * float16 / bfloat16 (the AMP path): tensor-core products with float32 accumulation;
    64 x 64 blocks, 4 warps, 3 stages, as in the tutorial, for heads up to 32 wide. Wider
    heads hold more of the key block's accumulators (dK, dV) in registers: the backward
    kernels take 32-key blocks at 64 channels, and at 128 channels every kernel (the
    forward and dQ kernels with 8 warps, so that each thread holds half the tile).
  * float32: IEEE products (plain FMA, no TF32) whose operands live in registers, so the
    blocks are 32 x 32 (16 x 16 at 128 channels; the dK / dV kernel with 8 warps at 64)
    and the pipeline single-stage; the tutorial's 64 x 64 spill kilobytes per thread in
    both backward kernels.
  * float64: as float32, at twice the bytes; 64 x 64 blocks would ask more shared memory
    than an A100 has (dK / dV: 203 KB); 32 x 32 ask at most 74 KB. Some float64 kernels
    spill a few bytes: float64 is for gradient checks, not for training speed.
"""
from typing import Dict, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

KERNELS = ('forward', 'backward_kv', 'backward_q')

#: compute capabilities the configurations are compiled and checked for; under 'auto'
#: GPUs of another generation (major version) take the PyTorch route
CAPABILITIES = ((8, 0), (9, 0))
#: the shared memory per block (opt-in maximum, bytes) a launch may use: sm_90's 227 KB,
#: and for the 8.x generation the smallest of its members (8.6 / 8.9: 99 KB; A100: 163 KB)
SHARED_MEMORY = {(8, 0): 101376, (9, 0): 232448}

#: widest head the kernels take (the head width is padded to a power of two >= 16)
MAX_HEAD_DIM = 128
#: element offsets are computed in int32
MAX_OFFSET = 2 ** 31 - 1


class KernelConfig(NamedTuple):
    """One kernel's launch: block sizes (constexpr) and the compiler's warps / stages."""
    block_q: int
    block_k: int
    num_warps: int
    num_stages: int


def _same(cfg: KernelConfig) -> Dict[str, KernelConfig]:
    return {name: cfg for name in KERNELS}


#: (precision, padded head width) -> per-kernel configuration
CONFIGS: Dict[Tuple[str, int], Dict[str, KernelConfig]] = {
    ('half', 16): _same(KernelConfig(64, 64, 4, 3)),
    ('half', 32): _same(KernelConfig(64, 64, 4, 3)),
    ('half', 64): dict(forward=KernelConfig(64, 64, 4, 3), backward_kv=KernelConfig(64, 32, 4, 2),
                       backward_q=KernelConfig(64, 32, 4, 2)),
    ('half', 128): dict(forward=KernelConfig(64, 32, 8, 2), backward_kv=KernelConfig(32, 32, 4, 2),
                        backward_q=KernelConfig(64, 32, 8, 2)),
    ('fp32', 16): _same(KernelConfig(32, 32, 4, 1)),
    ('fp32', 32): _same(KernelConfig(32, 32, 4, 1)),
    ('fp32', 64): dict(forward=KernelConfig(32, 32, 4, 1), backward_kv=KernelConfig(32, 32, 8, 1),
                       backward_q=KernelConfig(32, 32, 4, 1)),
    ('fp32', 128): _same(KernelConfig(16, 16, 4, 1)),
    ('fp64', 16): _same(KernelConfig(32, 32, 4, 1)),
    ('fp64', 32): _same(KernelConfig(32, 32, 4, 1)),
    ('fp64', 64): _same(KernelConfig(32, 32, 4, 1)),
    ('fp64', 128): _same(KernelConfig(16, 16, 4, 1)),
}

#: under the interpreter only the blocks matter: larger ones mean fewer (slow) Python-level
#: iterations
INTERPRETER = _same(KernelConfig(32, 64, 1, 1))


def precision(dtype: torch.dtype) -> str:
    """'half' (float16 / bfloat16), 'fp32' or 'fp64'; an unsupported dtype is an error."""
    if dtype in (torch.float16, torch.bfloat16):
        return 'half'
    if dtype == torch.float32:
        return 'fp32'
    if dtype == torch.float64:
        return 'fp64'
    raise TypeError(f'the Triton kernels take float16, bfloat16, float32 or float64 inputs, got {dtype}')


def padded_head_dim(head_dim: int) -> int:
    """The kernels' head width: the next power of two, at least 16."""
    return max(16, 1 << (int(head_dim) - 1).bit_length())


def kernel_configs(dtype: torch.dtype, head_dim: int) -> Dict[str, KernelConfig]:
    """The compiled kernels' configurations for inputs of `dtype` and `head_dim`."""
    d = padded_head_dim(head_dim)
    if d > MAX_HEAD_DIM:
        raise ValueError(f'the Triton kernels take heads up to {MAX_HEAD_DIM} wide, got {head_dim}')
    return CONFIGS[(precision(dtype), d)]


def _max_offset(x: Tensor) -> int:
    return sum((n - 1) * abs(s) for n, s in zip(x.shape, x.stride()))


def unsupported_reason(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor]) -> Optional[str]:
    """Why the compiled Triton kernels cannot take these CUDA inputs, or None when they can.

    q [B, h, Q, d], k / v [B, h, K, d], mask broadcastable to [B, h, Q, K] or None.
    """
    if q.shape[-1] > MAX_HEAD_DIM:
        return f'head width {q.shape[-1]} > {MAX_HEAD_DIM}'
    capability = torch.cuda.get_device_capability(q.device)
    if capability[0] not in {c[0] for c in CAPABILITIES}:
        return (f'compute capability {capability[0]}.{capability[1]}: the kernels are compiled and '
                f'checked for {", ".join(f"sm_{a}{b}" for a, b in CAPABILITIES)} only')
    b, h, nq, _ = q.shape
    tensors = [q, k, v] + ([] if mask is None else [mask.expand(b, h, nq, k.shape[2])])
    if any(_max_offset(t) > MAX_OFFSET for t in tensors) or b * h * max(nq, k.shape[2]) * q.shape[-1] > MAX_OFFSET:
        return 'tensors too large for the kernels\' int32 offsets'
    return None
