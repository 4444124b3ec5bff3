"""Triplane generator (after MoReMouse's triplane tokenizer + upsampler, Table A3 sizes;
Zhong et al., "MoReMouse: Monocular Reconstruction of Laboratory Mouse", arXiv:2507.04258).

    planes = generator(context)    # context [B, N, context_dim] -> [B, 3, C, T, T]

Learnable tokens, `internal_resolution`^2 per plane for the XY, XZ and YZ planes (3 x 64 x
64 = 12,288 by default), each plus a learned plane embedding and a 2D position embedding
(sine of the cell centre, through a learned linear layer). Every layer is pre-norm:
self-attention over all tokens of all three planes, cross-attention to the scene context,
FFN. Attention goes through `BiasedMultiheadAttention` (flash / memory-efficient SDPA, head
width `head_dim` independent of `d_model`), so no tokens x tokens matrix is ever formed. Then
`TriplaneUpsampler` lifts every plane to `triplane_resolution` with `output_channels`.

Plane layout (what `utils.triplane_sampling` reads): plane 0 = XY (rows y, columns x,
like the BEV canvas), 1 = XZ (rows z, columns x), 2 = YZ (rows z, columns y), all over the
point-cloud range. `with_cp` recomputes each layer in the backward pass
(activation checkpointing) instead of storing its activations.
"""
from typing import Optional

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmdet3d.registry import MODELS

from ..utils.position_embedding import sine_embedding
from .biased_attention import BiasedMultiheadAttention

NUM_PLANES = 3


class TriplaneLayer(nn.Module):
    """Pre-norm self-attention (all planes' tokens), cross-attention (context), FFN."""

    def __init__(self, d_model: int, context_dim: int, num_heads: int, head_dim: int, ffn_channels: int,
                 dropout: float = 0.0):
        super().__init__()
        self.norm_self, self.norm_cross, self.norm_ffn = (nn.LayerNorm(d_model) for _ in range(3))
        self.self_attn = BiasedMultiheadAttention(d_model, num_heads, attn_drop=dropout, head_dim=head_dim)
        self.cross_attn = BiasedMultiheadAttention(d_model, num_heads, attn_drop=dropout, head_dim=head_dim,
                                                   key_dims=context_dim)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_channels), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_channels, d_model))

    def forward(self, x: Tensor, context: Tensor, context_padding_mask: Optional[Tensor] = None) -> Tensor:
        x = self.self_attn(self.norm_self(x), identity=x)
        x = self.cross_attn(self.norm_cross(x), context, context, identity=x, key_padding_mask=context_padding_mask)
        return x + self.ffn(self.norm_ffn(x))


@MODELS.register_module()
class TriplaneGenerator(BaseModule):
    """Scene context tokens -> three feature planes. See the module docstring.

    Args:
        context_dim: channels of the context tokens.
        num_layers: self + cross attention layers.
        internal_resolution: token grid side per plane (attention runs here).
        triplane_resolution: output plane side (the upsampler's target).
        d_model: token width. head_dim: width of one attention head.
        num_heads: default d_model // head_dim; any other value puts projections of width
            num_heads * head_dim around the attention.
        output_channels: channels of each output plane.
        ffn_channels: hidden width of the FFN.
        upsampler: the upsampler's config (in/out channels and resolution are filled in).
        with_cp: activation checkpointing of every layer during training.
    """

    def __init__(self,
                 context_dim: int,
                 num_layers: int = 2,
                 internal_resolution: int = 64,
                 triplane_resolution: int = 128,
                 d_model: int = 512,
                 head_dim: int = 64,
                 num_heads: Optional[int] = None,
                 output_channels: int = 80,
                 ffn_channels: int = 1024,
                 dropout: float = 0.0,
                 upsampler: dict = dict(type='TriplaneUpsampler', mid_channels=128),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if num_heads is None:
            if d_model % head_dim:
                raise ValueError(f'TriplaneGenerator: d_model={d_model} is not a multiple of head_dim={head_dim}; '
                                 'set num_heads (projections then map d_model to num_heads * head_dim)')
            num_heads = d_model // head_dim
        if triplane_resolution < internal_resolution:
            raise ValueError(f'TriplaneGenerator: triplane_resolution={triplane_resolution} is below '
                             f'internal_resolution={internal_resolution}; the upsampler only enlarges')
        if d_model % 2:
            raise ValueError(f'TriplaneGenerator: d_model={d_model} must be even (sine position embedding)')
        self.context_dim, self.d_model = context_dim, d_model
        self.internal_resolution, self.triplane_resolution = internal_resolution, triplane_resolution
        self.num_heads, self.head_dim, self.output_channels = num_heads, head_dim, output_channels
        self.with_cp = with_cp
        cells = internal_resolution * internal_resolution
        self.tokens = nn.Parameter(torch.zeros(NUM_PLANES, cells, d_model))
        self.plane_embed = nn.Parameter(torch.zeros(NUM_PLANES, d_model))
        self.pos_proj = nn.Linear(d_model, d_model)
        centres = (torch.arange(internal_resolution, dtype=torch.float32) + 0.5) / internal_resolution
        rows, cols = torch.meshgrid(centres, centres, indexing='ij')
        # (column, row) of every cell, row-major: the token order of each plane
        self.register_buffer('cell_sine', sine_embedding(torch.stack([cols, rows], -1).view(cells, 2),
                                                         num_feats=d_model // 2), persistent=False)
        self.context_norm = nn.LayerNorm(context_dim)
        self.layers = nn.ModuleList(TriplaneLayer(d_model, context_dim, num_heads, head_dim, ffn_channels, dropout)
                                    for _ in range(num_layers))
        self.out_norm = nn.LayerNorm(d_model)
        up = dict(upsampler)
        up.update(in_channels=d_model, out_channels=output_channels, out_resolution=triplane_resolution)
        self.upsampler = MODELS.build(up)

    def init_weights(self):
        super().init_weights()
        nn.init.trunc_normal_(self.tokens, std=0.02)
        nn.init.normal_(self.plane_embed, std=0.02)

    def initial_tokens(self) -> Tensor:
        """[3 * r * r, d_model]: tokens + plane embedding + 2D position embedding."""
        pos = self.pos_proj(self.cell_sine.to(self.tokens.dtype))
        return (self.tokens + self.plane_embed[:, None] + pos[None]).flatten(0, 1)

    def forward(self, context: Tensor, context_padding_mask: Optional[Tensor] = None) -> Tensor:
        """context [B, N, context_dim] (+ padding mask [B, N], True = ignore) -> [B, 3, C, T, T]."""
        if context.dim() != 3 or context.shape[-1] != self.context_dim:
            raise ValueError(f'TriplaneGenerator expects context [B, N, context_dim={self.context_dim}], '
                             f'got {tuple(context.shape)}')
        b, r = context.shape[0], self.internal_resolution
        context = self.context_norm(context)
        x = self.initial_tokens()[None].expand(b, -1, -1)
        for layer in self.layers:
            if self.with_cp and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, context, context_padding_mask, use_reentrant=False)
            else:
                x = layer(x, context, context_padding_mask)
        x = self.out_norm(x).view(b * NUM_PLANES, r, r, self.d_model).permute(0, 3, 1, 2)
        planes = self.upsampler(x.contiguous())
        return planes.view(b, NUM_PLANES, self.output_channels, self.triplane_resolution, self.triplane_resolution)
