"""Multi-head attention through `torch.nn.functional.scaled_dot_product_attention`.

Why not `nn.MultiheadAttention`: called the usual way (`need_weights=True`) it returns the
attention weights, so it materialises the [B, heads, N, M] matrix; over the 12,288
triplane tokens at MoReMouse's sizes that is ~36 GB. SDPA dispatches to the flash /
memory-efficient kernels (CPU included), whose memory is linear in the tokens. The head
width is its own parameter (`head_dim`), not `query_dim // num_heads`: when
`num_heads * head_dim != query_dim` the q/k/v and output projections map between the two.
"""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn


class SDPAttention(nn.Module):
    """query [B, N, query_dim] attends to key [B, M, key_dim] (itself when None).

    `key_padding_mask` [B, M] follows nn.MultiheadAttention: True = ignore this key. A
    sample whose every key is ignored gets a zero output (not the NaN of an empty softmax).
    """

    def __init__(self, query_dim: int, num_heads: int, head_dim: int, key_dim: Optional[int] = None,
                 dropout: float = 0.0):
        super().__init__()
        self.num_heads, self.head_dim, self.dropout = num_heads, head_dim, dropout
        inner = num_heads * head_dim
        key_dim = query_dim if key_dim is None else key_dim
        self.q_proj = nn.Linear(query_dim, inner)
        self.k_proj = nn.Linear(key_dim, inner)
        self.v_proj = nn.Linear(key_dim, inner)
        self.out_proj = nn.Linear(inner, query_dim)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: Tensor, key: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None) -> Tensor:
        key = query if key is None else key
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(key))
        mask = empty = None
        if key_padding_mask is not None:
            empty = key_padding_mask.all(1)
            # an all-ignored sample attends to everything and is zeroed below
            mask = (~key_padding_mask | empty[:, None])[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        out = self.out_proj(out.transpose(1, 2).flatten(2))
        if empty is not None and bool(empty.any()):
            out = out * (~empty).to(out.dtype)[:, None, None]
        return out
