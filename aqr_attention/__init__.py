"""Exact local-window attention bias and local-window attention, on CPU and CUDA.

The attention side of AQR (after MoME's Adaptive Query Router, Park et al., CVPR 2025):
a per-query additive bias on the keys inside a BEV window and a camera window, applied
exactly in a decoder cross-attention without a dense [batch, queries, keys] tensor, and
the two-window softmax of the router's local attention mask (LAM). This package imports
with torch alone (triton is imported only when the Triton route runs), so a machine with
PyTorch and a GPU can check the kernels without the OpenMMLab stack
(`tools/gpu_check.sh --kernels-only`). One file per concept:

    key_grid.py                 KeyGrid: the decoder memory's key grids (BEV, then cameras); WindowPart
    window_size.py              window sides: validation, cells from metres
    window_bias.py              LocalWindowBias: the compact bias (O(B * Q) numbers)
    bias_attention.py           local_bias_attention: exact biased attention, never dense
    window_attention.py         local_window_attention: the LAM's two-window softmax; LocalWindowMask
    key_padding.py              the [B, K] key-padding mask and its additive form
    backends.py                 attention_backend: 'auto' / 'cpu_kernel' / 'triton' / 'torch';
                                window_route: the route object of a call
    window_attention_cpu.py     the compiled CPU kernel (csrc/window_attention_cpu.cpp), KernelWindows
    triton_configs.py           what the Triton kernels support, and their launch configurations
    triton_bias_attention.py    the Triton (CUDA) kernels of the biased attention
    triton_compile.py           compiles those kernels for GPU targets without a GPU
    grouped_route.py            the pure-PyTorch reference route (grouped window boxes), GroupedWindows
    lse_attention.py            fused attention with its log-sum-exp (correction route)
    precision.py                accumulation dtypes and autocast policy
"""
from .backends import BACKENDS, attention_backend, get_attention_backend, set_attention_backend
from .bias_attention import local_bias_attention
from .key_grid import KeyGrid, WindowPart
from .window_attention import LocalWindowMask, local_window_attention
from .window_bias import LocalWindowBias
from .window_size import WindowSides, WindowSize, check_window_size, split_window_size

__all__ = ['BACKENDS', 'attention_backend', 'get_attention_backend', 'set_attention_backend',
           'local_bias_attention', 'KeyGrid', 'WindowPart', 'LocalWindowMask', 'local_window_attention',
           'LocalWindowBias',
           'WindowSides', 'WindowSize', 'check_window_size', 'split_window_size']
