"""AQR: per-query LiDAR / camera weights turned into an exact local-window attention bias.

After MoME's Adaptive Query Router (Park et al., "MoME", CVPR 2025), made continuous.
The registered modules live here; the attention they feed (the window bias, the exact
biased and two-window attentions and their CPU / CUDA kernels) is the torch-only package
`aqr_attention`:

    weight_generator.py      AQRWeightGenerator: per-query weights through a LAM layer
    bias_generator.py        AttentionBiasGenerator: weights -> aqr_attention.LocalWindowBias
"""
from .bias_generator import AttentionBiasGenerator
from .weight_generator import AQRWeightGenerator, AQRWeights

__all__ = ['AttentionBiasGenerator', 'AQRWeightGenerator', 'AQRWeights']
