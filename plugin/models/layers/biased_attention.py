"""Multi-head attention through `scaled_dot_product_attention`, with masks and an
additive attention bias (the hook that AQR's local window bias and local window mask plug
into). The one attention module of this code base: the CMT decoder, AQR's LAM layer, the
triplane generator and FuTr's camera-token block all use it.

Why not `nn.MultiheadAttention`: it materialises the [B, heads, Q, K] weights and cannot
reach the fused flash / memory-efficient kernels (over the 12,288 triplane tokens at
MoReMouse's sizes that matrix is ~36 GB); the official CMT flash path, in turn, silently
ignored masks. Here every mask is honoured and the scores never leave SDPA. The head width
may differ from embed_dims / num_heads (`head_dim`; the projections then map between the
two widths) and the keys may have their own width (`key_dims`).

Conventions (the same as `nn.MultiheadAttention`, batch first):
  * `attn_mask`: bool [Q, K] or [B*, Q, K] with True = *not allowed*, or float, added.
  * `key_padding_mask`: bool [B, K], True = padding (ignored key).
  * `attn_bias` (the bias contract): either
      - a float tensor added to the scores before the softmax, broadcastable to
        [B, heads, Q, K]; accepted shapes [Q, K], [B, Q, K] (shared by all heads) and
        [B, heads, Q, K]; its dtype is cast to the query's; gradients flow into it; or
      - a compact bias object with a method `attend(q, k, v, key_padding_mask) -> out`
        taking the per-head tensors q [B, h, Q, d], k/v [B, h, K, d] and the bool key
        padding mask [B, K] (or None), returning [B, h, Q, d]. This is how an exact bias
        that is never materialised densely (AQR's `LocalWindowBias`) plugs in without
        touching this module. It serves cross-attention: an `attn_mask` with it is an
        error.
A query whose keys are all masked attends to nothing and returns zeros, never NaN.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.registry import MODELS


def combine_masks(attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor],
                  attn_bias: Optional[Tensor], batch: int, heads: int, num_q: int, num_k: int,
                  dtype: torch.dtype) -> Optional[Tensor]:
    """One additive float mask [B, 1 or heads, Q, K] (or None) from all three inputs."""
    total = None

    def add(term):
        nonlocal total
        total = term if total is None else total + term

    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            attn_mask = torch.zeros_like(attn_mask, dtype=dtype).masked_fill(attn_mask, float('-inf'))
        attn_mask = attn_mask.to(dtype)
        if attn_mask.dim() == 2:
            attn_mask = attn_mask[None, None]
        elif attn_mask.dim() == 3:  # [B or B*heads, Q, K]
            attn_mask = attn_mask.view(batch, -1, num_q, num_k)
        add(attn_mask)
    if key_padding_mask is not None:
        pad = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
        add(pad.masked_fill(key_padding_mask, float('-inf'))[:, None, None, :])
    if attn_bias is not None:
        bias = attn_bias.to(dtype)
        if bias.dim() == 2:
            bias = bias[None, None]
        elif bias.dim() == 3:
            bias = bias[:, None]
        if bias.dim() != 4:
            raise ValueError(f'attn_bias must be [Q, K], [B, Q, K] or [B, heads, Q, K], got {tuple(attn_bias.shape)}')
        add(bias)
    return total


def sdpa_with_mask(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor],
                   dropout_p: float = 0.0) -> Tensor:
    """SDPA that returns zeros (not NaN) for rows whose keys are all masked."""
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    dead = torch.isinf(mask).all(-1, keepdim=True) if mask.dtype.is_floating_point else None
    if dead is not None and dead.any():
        mask = mask.masked_fill(dead, 0.0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return out.masked_fill(dead.expand(*out.shape[:-1], 1), 0.0)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


@MODELS.register_module()
class BiasedMultiheadAttention(BaseModule):
    """Drop-in for mmcv's `MultiheadAttention` (batch first) with an `attn_bias` input.

    Args:
        embed_dims: channels of the queries (and of the output).
        num_heads: attention heads.
        attn_drop: dropout on the attention probabilities (training only; refused with a compact
            bias, whose routes have no dropout).
        proj_drop: dropout after the output projection.
        head_dim: width of one head (default embed_dims // num_heads, which must divide).
        key_dims: channels of the keys and values (default embed_dims).
    """

    def __init__(self, embed_dims: int, num_heads: int, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, batch_first: bool = True, head_dim: Optional[int] = None,
                 key_dims: Optional[int] = None, init_cfg=None, **kwargs):
        super().__init__(init_cfg)
        if head_dim is None and embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        if not batch_first:
            raise ValueError('BiasedMultiheadAttention is batch first only')
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.head_dim = embed_dims // num_heads if head_dim is None else int(head_dim)
        inner, key_dims = num_heads * self.head_dim, embed_dims if key_dims is None else key_dims
        self.attn_drop = attn_drop
        self.q_proj = nn.Linear(embed_dims, inner)
        self.k_proj = nn.Linear(key_dims, inner)
        self.v_proj = nn.Linear(key_dims, inner)
        self.out_proj = nn.Linear(inner, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, query: Tensor, key: Optional[Tensor] = None, value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None, query_pos: Optional[Tensor] = None,
                key_pos: Optional[Tensor] = None, attn_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, attn_bias=None, **kwargs) -> Tensor:
        """query [B, Q, C]; key/value [B, K, C] (default: query); returns identity + attn."""
        key = query if key is None else key
        value = key if value is None else value
        identity = query if identity is None else identity
        if key_pos is None and query_pos is not None and key.shape == query.shape:
            key_pos = query_pos
        q_in = query if query_pos is None else query + query_pos
        k_in = key if key_pos is None else key + key_pos
        q, k, v = self._heads(self.q_proj(q_in)), self._heads(self.k_proj(k_in)), self._heads(self.v_proj(value))
        b, h, nq, _ = q.shape
        drop = self.attn_drop if self.training else 0.0
        if attn_bias is not None and not isinstance(attn_bias, Tensor):
            if not hasattr(attn_bias, 'attend'):
                raise TypeError(f'attn_bias of type {type(attn_bias).__name__} is neither a tensor '
                                'nor a compact bias with an attend(q, k, v, key_padding_mask) method')
            if attn_mask is not None:
                raise ValueError(f'a compact attention bias ({type(attn_bias).__name__}) takes a key padding '
                                 'mask only, not an attn_mask')
            if drop > 0:   # the compact routes have no dropout: refuse rather than train without it
                raise ValueError(f'attn_drop={self.attn_drop} cannot be applied with a compact attention bias '
                                 f'({type(attn_bias).__name__}); set the cross-attention attn_drop '
                                 '(model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_cfg.attn_drop) to 0 - '
                                 'official CMT has none there')
            out = attn_bias.attend(q, k, v, key_padding_mask)
        else:
            mask = combine_masks(attn_mask, key_padding_mask, attn_bias, b, h, nq, k.shape[2], q.dtype)
            out = sdpa_with_mask(q, k, v, mask, drop)
        out = out.transpose(1, 2).reshape(b, nq, h * self.head_dim)
        return identity + self.proj_drop(self.out_proj(out))
