"""A post-norm transformer block in which camera tokens attend to BEV tokens.

    tokens = LayerNorm(tokens + CrossAttention(tokens, bev))
    tokens = LayerNorm(tokens + FFN(tokens))

The decoder-layer pattern of DETR / FUTR3D (Chen et al., CVPR Workshops 2023) without
self-attention: the queries are the few camera tokens and the keys the BEV tokens, so the
cost is O(tokens x BEV cells), never O(BEV cells^2). Post-norm (residual, then LayerNorm)
as in DETR's decoder; the attention runs through SDPA, so no [B, heads, tokens, cells]
weight matrix is kept. With the attention's output projection at zero the block is
LayerNorm -> FFN block of the tokens alone.
"""
from mmcv.cnn.bricks.transformer import FFN
from torch import Tensor, nn

from .biased_attention import BiasedMultiheadAttention


class CameraTokenBlock(nn.Module):
    """`block(tokens [B, N, E], bev [B, M, E])` -> [B, N, E].

    Args:
        embed_dims: E.
        num_heads: heads of the cross-attention (E must divide by it).
        feedforward_channels: hidden width of the FFN.
        dropout: dropout of the attention weights, the residual branches and the FFN.
    """

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int, dropout: float = 0.0):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'CameraTokenBlock: embed_dims ({embed_dims}) must be a multiple of num_heads '
                             f'({num_heads})')
        self.attn = BiasedMultiheadAttention(embed_dims, num_heads, attn_drop=dropout, proj_drop=dropout)
        self.norm1 = nn.LayerNorm(embed_dims)
        # mmcv's FFN adds its input back (add_identity): the second residual
        self.ffn = FFN(embed_dims, feedforward_channels, num_fcs=2, ffn_drop=dropout, add_identity=True)
        self.norm2 = nn.LayerNorm(embed_dims)

    def forward(self, tokens: Tensor, bev: Tensor) -> Tensor:
        tokens = self.norm1(self.attn(tokens, bev, bev))   # tokens + dropout(attention), as DETR
        return self.norm2(self.ffn(tokens))
