"""AQR: per-query LiDAR / camera weights turned into an exact local-window attention bias.

After MoME's Adaptive Query Router (Park et al., "MoME", CVPR 2025), made continuous.
One file per concept:

    key_layout.py            KeyLayout: the decoder's key order (BEV grid, then camera maps)
    weight_generator.py      AQRWeightGenerator: per-query weights through a LAM layer
    bias_generator.py        AttentionBiasGenerator: weights -> LocalWindowBias
    window_bias.py           LocalWindowBias: the compact bias (O(B * Q) numbers)
    window_size.py           window-size validation
    bias_attention.py        local_bias_attention: exact biased attention, never dense
    window_attention.py      local_window_attention: the LAM's two-window softmax
    backends.py              attention_backend: 'auto' / 'cpu_kernel' / 'triton' / 'torch'
    triton_bias_attention.py the Triton (CUDA) kernels of the biased attention
    grouped_route.py         the pure-PyTorch reference route (grouped window boxes)
    lse_attention.py         fused attention with its log-sum-exp (correction route)
    precision.py             accumulation dtypes and autocast policy
"""
from .backends import BACKENDS, attention_backend, get_attention_backend, set_attention_backend
from .bias_attention import local_bias_attention
from .bias_generator import AttentionBiasGenerator
from .key_layout import KeyLayout, WindowPart
from .weight_generator import AQRWeightGenerator, AQRWeights
from .window_attention import local_window_attention
from .window_bias import LocalWindowBias

__all__ = ['BACKENDS', 'attention_backend', 'get_attention_backend', 'set_attention_backend',
           'local_bias_attention', 'AttentionBiasGenerator', 'KeyLayout', 'WindowPart', 'AQRWeightGenerator',
           'AQRWeights', 'local_window_attention', 'LocalWindowBias']
