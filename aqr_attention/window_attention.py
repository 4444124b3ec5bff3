"""Attention restricted to each query's local windows: the AQR's LAM layer.

MoME's Adaptive Query Router (Park et al., CVPR 2025) attends through a local attention mask (LAM): a query sees
only the keys in a square window around its BEV cell and in a square window around its
pixel in the view that sees it. With the dense boolean [B, Q, K] mask
that costs O(Q * K) memory and time; gathering every query's window keys costs
O(Q * window keys * C) memory (keys and values: 2 x 2 samples x ~400 queries x 250 keys x
128 channels x 4 B, about 200 MB on the synthetic config) and as much in the backward.

On CPU the compiled kernel (`csrc/window_attention_cpu.cpp`) runs an online
softmax over each (query, head)'s window keys. Elsewhere (CUDA, the extension not built,
or the 'torch' back-end of `backends.py`) the two windows are scored with the grouped-box
scheme of `grouped_route.py` and merged by log-sum-exp, exactly (`backends.window_route`
picks the route object once per call):

    per modality p:  L_p = logsumexp_{k in window_p} s_k,   o_p = softmax over window_p of s, times v
    L = logaddexp(L_bev, L_cam),   out = sum_p exp(L_p - L) o_p

(each query is in exactly one group per modality, so o_p and L_p are written, not summed).
Both backwards recompute the window scores and apply the usual softmax backward with
P = exp(s - L), D = rowsum(dO * O). A query with no visible window key gets zeros.
Extra memory: O(Q * h * d) per modality (plus, grouped, per-group buffers within
`chunk_elements`). Computed in float32 (float64 for float64 inputs), returned in the
input dtype.
"""
import math
from typing import List, Optional

import torch
from torch import Tensor

from .backends import window_attention_backend, window_route
from .grouped_route import finite_lse
from .key_grid import WindowPart
from .key_padding import additive_key_padding
from .precision import autocast_off, check_dtypes, compute_dtype


class _LocalWindowAttention(torch.autograd.Function):

    @staticmethod
    @autocast_off
    def forward(ctx, q, k, v, parts, mask, chunk_elements):
        b, h, nq, d = q.shape
        qs = (q.to(compute_dtype(q)) * (1.0 / math.sqrt(d))).contiguous()
        windows = window_route(window_attention_backend(q), parts, h, d, chunk_elements)
        out, lse = windows.softmax(qs, k, v, mask)
        ctx.save_for_backward(q, k, v, out, lse, mask)
        ctx.windows = windows
        return out.to(q.dtype)

    @staticmethod
    @autocast_off
    def backward(ctx, grad_out):
        q, k, v, out, lse, mask = ctx.saved_tensors
        b, h, nq, d = q.shape
        sm = 1.0 / math.sqrt(d)
        acc = compute_dtype(q)
        qs, go = (q.to(acc) * sm).contiguous(), grad_out.to(acc).contiguous()
        lse = finite_lse(lse)
        row_term = (go * out).sum(-1)                                      # D = rowsum(dO * O)
        dq = torch.zeros_like(qs)
        # key-major buffers, so that a group's box is a strided view with contiguous rows
        dk = qs.new_zeros(b, k.shape[2], h, d).transpose(1, 2)
        dv = qs.new_zeros(b, v.shape[2], h, d).transpose(1, 2)
        # w = 1: the plain softmax backward on the window keys
        ctx.windows.backward(qs, k, v, go, row_term, lse, mask, qs.new_ones(2, b, nq), dq, dk, dv)
        return (dq * sm).to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None


def local_window_attention(q: Tensor, k: Tensor, v: Tensor, parts: List[WindowPart],
                           key_padding_mask: Optional[Tensor] = None, chunk_elements: int = 1 << 19) -> Tensor:
    """softmax over each query's window keys only, exactly, never O(Q * K).

    Args:
        q: [B, heads, Q, d]; k, v: [B, heads, K, d] (any strides; key-major head-split
            views are the fast case).
        parts: the windows, from `KeyGrid.window_parts`.
        key_padding_mask: optional bool [B, K], True = padding (hidden key, e.g. image
            padding).
        chunk_elements: memory budget (elements) of one group's scores / gathered keys.
    Returns:
        [B, heads, Q, d]; zeros for a query without a visible window key.
    """
    check_dtypes(q=q, k=k, v=v)
    num_keys = sum(p.rows * p.cols for p in parts)
    if k.shape[2] != num_keys or v.shape[2] != num_keys:
        raise ValueError(f'{k.shape[2]} keys, but the windows describe grids of {num_keys} keys')
    for p in parts:
        if tuple(p.row.shape) != (q.shape[0], q.shape[2]):
            raise ValueError(f'the windows are given for {tuple(p.row.shape)} queries, attention has '
                             f'{(q.shape[0], q.shape[2])}')
    mask = additive_key_padding(key_padding_mask, q.shape[0], num_keys, compute_dtype(q))
    return _LocalWindowAttention.apply(q, k, v, parts, mask, chunk_elements)


class LocalWindowMask:
    """The LAM's local attention mask as a compact attention bias: an attention module's
    `attend(q, k, v, key_padding_mask)` hook (as `LocalWindowBias.attend`) that runs
    `local_window_attention` over these windows, so any attention module that takes a
    compact bias becomes a window-restricted one.

    Args:
        parts: the windows, from `KeyGrid.window_parts`.
        chunk_elements: memory budget (elements) of one group's scores / gathered keys.
    """

    def __init__(self, parts: List[WindowPart], chunk_elements: int = 1 << 19):
        self.parts, self.chunk_elements = parts, chunk_elements

    def attend(self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        return local_window_attention(q, k, v, self.parts, key_padding_mask, self.chunk_elements)
