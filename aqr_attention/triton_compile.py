"""Compiles the Triton kernels of `triton_bias_attention.py` for GPU targets, without a GPU.

Triton's interpreter (TRITON_INTERPRET=1, how the CPU tests run the kernels) skips the
compiler, so a kernel can pass every interpreter test and still fail to compile, spill
registers to local memory or ask for more shared memory than the GPU has. This module
builds each kernel's launch exactly as the autograd function does (`_Launch`: arguments,
specialisation, block sizes, warps and stages of `triton_configs.py`) at nuScenes size,
compiles it with `triton.compile` for `GPUTarget('cuda', 80 | 90, 32)`, and reads
  * registers, spill stores / loads and stack frame from `ptxas -v`, run by Triton's own
    backend (the wheel's ptxas, Triton's flags);
  * the static shared memory of the launch from the compiled kernel's metadata,
    against the architecture's per-block maximum (`triton_configs.SHARED_MEMORY`).

Run in a process where TRITON_INTERPRET is unset or 0 (the kernels must be compiled
functions, not interpreted ones):

    python -m aqr_attention.triton_compile                      # the whole grid, a table
    python -m aqr_attention.triton_compile --dtypes float32 --head-dims 32 --json
"""
import argparse
import contextlib
import io
import json
import os
import re
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from .key_grid import KeyGrid
from .triton_configs import CAPABILITIES, SHARED_MEMORY, KernelConfig
from .window_bias import LocalWindowBias

DTYPE_NAMES = {'float16': torch.float16, 'bfloat16': torch.bfloat16, 'float32': torch.float32,
               'float64': torch.float64}
#: what the CMT nuScenes configs decode against: 900 queries (+ denoising queries), a
#: 180 x 180 BEV grid and six 40 x 100 camera maps, 8 heads, batch 2
NUSCENES = dict(batch=2, heads=8, queries=1300, bev_shape=(180, 180), cam_shape=(6, 40, 100))


class CompileResult(NamedTuple):
    kernel: str
    capability: Tuple[int, int]
    dtype: str
    head_dim: int
    has_mask: bool
    config: KernelConfig
    registers: int
    spill_bytes: int          # spill stores + spill loads
    stack_bytes: int
    shared_bytes: int
    shared_limit: int
    error: Optional[str]

    @property
    def ok(self) -> bool:
        """Compiled, no spill (float64 excepted: its products run in FP64 registers), and
        the shared memory within the architecture's limit."""
        return (self.error is None and self.shared_bytes <= self.shared_limit
                and (self.spill_bytes == 0 or self.dtype == 'float64'))


def _check_not_interpreted():
    if os.environ.get('TRITON_INTERPRET', '0') == '1':
        raise RuntimeError('aqr_attention.triton_compile needs compiled kernels: run it with TRITON_INTERPRET '
                           'unset or 0 (the interpreter replaces @triton.jit functions)')


def _inputs(dtype: torch.dtype, head_dim: int, has_mask: bool, shape: Dict):
    """q, k, v as the decoder passes them (head-split views of [B, N, h * d] projections),
    a window bias and a key-padding mask, on the meta device (no memory)."""
    b, h, nq = shape['batch'], shape['heads'], shape['queries']
    layout = KeyGrid.of(shape['bev_shape'], shape['cam_shape'])
    nk = layout.num_keys

    def heads(n):
        return torch.empty(b, n, h, head_dim, dtype=dtype, device='meta').transpose(1, 2)

    q, k, v = heads(nq), heads(nk), heads(nk)
    zeros = torch.zeros(b, nq, dtype=torch.long)
    bias = LocalWindowBias(layout.bev_shape, layout.cam_shape, torch.stack([zeros, zeros], -1),
                           torch.stack([zeros, zeros, zeros], -1), torch.zeros(b, nq), torch.zeros(b, nq), (15, 5))
    mask = torch.empty(b, 1, 1, nk, dtype=dtype, device='meta') if has_mask else None
    return q, k, v, bias, mask


def kernel_calls(capability: Tuple[int, int], dtype: torch.dtype, head_dim: int, has_mask: bool,
                 configs: Optional[Dict[str, KernelConfig]] = None, shape: Dict = NUSCENES):
    """{kernel name: KernelCall} of one forward + backward, as the autograd function builds them."""
    from .triton_bias_attention import _Launch, kernel_inputs
    q, k, v, bias, mask = _inputs(dtype, head_dim, has_mask, shape)
    launch = _Launch(q, k, bias, mask, capability, configs)
    q, k, v = kernel_inputs(q, k, v, launch.low, launch.acc)
    bl = torch.empty(q.shape[0], q.shape[2], dtype=launch.acc, device='meta')
    out, lse = launch.forward_buffers(q)
    dq, dk, dv, db = launch.backward_buffers(q)
    forward = launch.forward(q, k, v, bl, bl, out, lse)
    kv, qc = launch.backward(q, k, v, bl, bl, out, lse, lse, dq, dk, dv, db)     # dO: out, D: lse
    return dict(forward=forward, backward_kv=kv, backward_q=qc)


def _ptxas_info(compiled, backend, options, capability: int) -> Tuple[int, int, int]:
    """(registers, spill store + load bytes, stack frame bytes): the PTX assembled again by
    the backend's own `make_cubin` (the wheel's ptxas with Triton's flags) with its
    `ptxas -v` log turned on."""
    from triton import knobs
    log = io.StringIO()
    with knobs.nvidia.scope(), contextlib.redirect_stdout(log):
        knobs.nvidia.dump_ptxas_log = True
        backend.make_cubin(compiled.asm['ptx'], {}, options, capability)
    text = log.getvalue()
    regs = re.search(r'Used (\d+) registers', text)
    stack = re.search(r'(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads', text)
    if regs is None or stack is None:
        raise RuntimeError(f'no register report in the ptxas log: {text[-1000:]}')
    return int(regs.group(1)), int(stack.group(2)) + int(stack.group(3)), int(stack.group(1))


def compile_call(call, capability: Tuple[int, int]):
    """Compiles one KernelCall for a CUDA target: (compiled kernel, backend, options)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature
    _check_not_interpreted()
    target = GPUTarget('cuda', capability[0] * 10 + capability[1], 32)
    backend = make_backend(target)
    kernel = call.kernel
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    kwargs = dict(call.constexprs, num_warps=call.config.num_warps, num_stages=call.config.num_stages,
                  debug=False)
    bound_args, specialization, options = binder(*call.args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound_args, specialization, options)
    compiled = triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target,
                              options=options.__dict__)
    return compiled, backend, options


def compile_kernels(capability: Tuple[int, int], dtype: torch.dtype, head_dim: int, has_mask: bool,
                    configs: Optional[Dict[str, KernelConfig]] = None) -> List[CompileResult]:
    """Compiles the three kernels for one target and input kind; never raises on a
    compile error (it is reported in `error`)."""
    name = next(n for n, d in DTYPE_NAMES.items() if d == dtype)
    results = []
    for kernel, call in kernel_calls(capability, dtype, head_dim, has_mask, configs).items():
        regs = spill = stack = shared = -1
        error = None
        try:
            compiled, backend, options = compile_call(call, capability)
            shared = int(compiled.metadata.shared)
            regs, spill, stack = _ptxas_info(compiled, backend, options, capability[0] * 10 + capability[1])
        except Exception as err:   # reported, not raised: the caller tabulates every case
            error = f'{type(err).__name__}: ...{str(err)[-600:]}'
        results.append(CompileResult(kernel, capability, name, head_dim, has_mask, call.config, regs, spill, stack,
                                     shared, SHARED_MEMORY[capability], error))
    return results


def compile_grid(capabilities: Sequence[Tuple[int, int]], dtypes: Sequence[str], head_dims: Sequence[int],
                 masks: Sequence[bool] = (False, True)) -> List[CompileResult]:
    return [r for cap in capabilities for dt in dtypes for d in head_dims for m in masks
            for r in compile_kernels(cap, DTYPE_NAMES[dt], d, m)]


def format_table(results: Sequence[CompileResult]) -> str:
    lines = ['| kernel | arch | dtype | head dim | mask | blocks (q x k), warps, stages | registers | spill B | '
             'stack B | shared B (limit) | ok |', '|' + ' --- |' * 11]
    for r in results:
        c = r.config
        lines.append(f'| {r.kernel} | sm_{r.capability[0]}{r.capability[1]} | {r.dtype} | {r.head_dim} | '
                     f'{"yes" if r.has_mask else "no"} | {c.block_q} x {c.block_k}, {c.num_warps}, {c.num_stages} | '
                     f'{r.registers} | {r.spill_bytes} | {r.stack_bytes} | {r.shared_bytes} ({r.shared_limit}) | '
                     f'{"yes" if r.ok else "NO: " + (r.error or "spills or shared memory")} |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--capabilities', nargs='+', type=int, default=[a * 10 + b for a, b in CAPABILITIES],
                        help='compute capabilities as 80, 90, ...')
    parser.add_argument('--dtypes', nargs='+', choices=sorted(DTYPE_NAMES), default=list(DTYPE_NAMES))
    parser.add_argument('--head-dims', nargs='+', type=int, default=[32, 64, 128])
    parser.add_argument('--masks', nargs='+', choices=['no', 'yes'], default=['no', 'yes'])
    parser.add_argument('--json', action='store_true', help='one JSON object per line instead of a table')
    args = parser.parse_args(argv)
    _check_not_interpreted()
    caps = [(c // 10, c % 10) for c in args.capabilities]
    results = compile_grid(caps, args.dtypes, args.head_dims, [m == 'yes' for m in args.masks])
    if args.json:
        for r in results:
            print(json.dumps(dict(r._asdict(), config=r.config._asdict(), ok=r.ok)))
    else:
        print(format_table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
