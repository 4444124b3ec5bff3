"""Attention restricted to each query's local windows: the AQR's LAM layer (issue #4).

MoME's Adaptive Query Router attends through a local attention mask (LAM): a query sees
only the keys in a square window around its BEV cell and in a square window around its
pixel in the view that sees it (DESIGN.md "AQR"). With the dense boolean [B, Q, K] mask
that costs O(Q * K) memory and time; gathering every query's window keys costs
O(Q * window keys * C) memory (keys and values: 2 x 2 samples x ~400 queries x 250 keys x
128 channels x 4 B, about 200 MB on the synthetic config) and as much in the backward.

Here the two windows are scored with the grouped-box scheme of `window_groups.py` and
merged by log-sum-exp, exactly:

    per modality p:  L_p = logsumexp_{k in window_p} s_k,   o_p = softmax over window_p of s, times v
    L = logaddexp(L_bev, L_cam),   out = sum_p exp(L_p - L) o_p

(each query is in exactly one group per modality, so o_p and L_p are written, not summed).
The backward recomputes each group's scores and applies the usual softmax backward with
P = exp(s - L), D = rowsum(dO * O). A query with no visible window key gets zeros.
Extra memory: O(Q * h * d) per modality plus per-batch buffers within `chunk_elements`.
"""
import math
from typing import List, Optional

import torch
from torch import Tensor

from .window_groups import (GroupBatch, WindowPart, autocast_off, flat_rows, gather, group_batches, scatter_add,
                            unflat_rows)


def _scores(qg: Tensor, kb: Tensor, mask: Optional[Tensor], gb: GroupBatch) -> Tensor:
    """[G, h, Qm, Kb] scores of a batch's members on their boxes, -inf outside their windows."""
    return gb.scores(qg, kb, mask).masked_fill_(gb.inside()[:, None] == 0, float('-inf'))


def _finite(x: Tensor) -> Tensor:
    """-inf (no visible key) -> 0, so that exp(s - x) gives 0 rather than NaN."""
    return x.masked_fill(torch.isneginf(x), 0.0)


class _LocalWindowAttention(torch.autograd.Function):

    @staticmethod
    @autocast_off
    def forward(ctx, q, k, v, parts, mask, chunk_elements):
        b, h, nq, d = q.shape
        qs = flat_rows(q, extra_row=0.0).mul_(1.0 / math.sqrt(d))
        kf, vf = flat_rows(k), flat_rows(v)
        batches = group_batches(parts, k.shape[2], h, d, chunk_elements)
        # per modality (BEV, camera): the normalised window output and its log-sum-exp
        outs = qs.new_zeros(2, b * nq + 1, h, d)
        lses = qs.new_full((2, b * nq + 1, h), float('-inf'))
        for gb in batches:
            p = gb.part.index
            s = _scores(gather(qs, gb.flat_q), gather(kf, gb.flat_k), mask, gb)
            lse = torch.logsumexp(s, -1)                                   # [G, h, Qm]
            probs = (s - _finite(lse)[..., None]).exp_()
            # padded member slots all land on the extra row: its value is never read
            lses[p].index_copy_(0, gb.flat_q.flatten(), lse.transpose(1, 2).reshape(-1, h))
            outs[p].index_copy_(0, gb.flat_q.flatten(),
                                torch.matmul(probs, gather(vf, gb.flat_k)).transpose(1, 2).reshape(-1, h, d))
        lse = torch.logaddexp(lses[0], lses[1])
        out = (torch.exp(lses - _finite(lse))[..., None] * outs).sum(0)
        out, lse = unflat_rows(out, b, nq), unflat_rows(lse, b, nq)
        ctx.save_for_backward(q, k, v, out, lse, mask)
        ctx.batches = batches
        return out.to(q.dtype)

    @staticmethod
    @autocast_off
    def backward(ctx, grad_out):
        q, k, v, out, lse, mask = ctx.saved_tensors
        b, h, nq, d = q.shape
        sm = 1.0 / math.sqrt(d)
        qs, go = flat_rows(q, extra_row=0.0).mul_(sm), flat_rows(grad_out, extra_row=0.0)
        kf, vf = flat_rows(k), flat_rows(v)
        lse = flat_rows(_finite(lse), extra_row=0.0)
        row_term = flat_rows((grad_out.float() * out).sum(-1), extra_row=0.0)   # D = rowsum(dO * O)
        dq = torch.zeros_like(qs)
        dk = torch.zeros_like(kf)
        dv = torch.zeros_like(vf)
        for gb in ctx.batches:
            qg, gog = gather(qs, gb.flat_q), gather(go, gb.flat_q)         # [G, h, Qm, d]
            kb = gather(kf, gb.flat_k)
            s = _scores(qg, kb, mask, gb)
            probs = (s - gather(lse, gb.flat_q)[..., None]).exp_()       # true P on the box
            ds = torch.matmul(gog, gather(vf, gb.flat_k).transpose(-1, -2))
            ds -= gather(row_term, gb.flat_q)[..., None]
            ds *= probs
            scatter_add(dq, gb.flat_q, torch.matmul(ds, kb))
            scatter_add(dk, gb.flat_k, torch.matmul(ds.transpose(-1, -2), qg))
            scatter_add(dv, gb.flat_k, torch.matmul(probs.transpose(-1, -2), gog))
        num_keys = k.shape[2]
        return ((unflat_rows(dq, b, nq) * sm).to(q.dtype), unflat_rows(dk, b, num_keys).to(k.dtype),
                unflat_rows(dv, b, num_keys).to(v.dtype), None, None, None)


def local_window_attention(q: Tensor, k: Tensor, v: Tensor, parts: List[WindowPart],
                           mask: Optional[Tensor] = None, chunk_elements: int = 1 << 19) -> Tensor:
    """softmax over each query's window keys only, exactly, never O(Q * K).

    Args:
        q: [B, heads, Q, d]; k, v: [B, heads, K, d] (any strides; key-major head-split
            views are the fast case).
        parts: the windows, from `window_groups.window_parts`.
        mask: optional additive float mask broadcastable to [B, heads, Q, K] (-inf = hidden
            key, e.g. image padding).
        chunk_elements: memory budget (elements) of one batch of groups' scores / gathered keys.
    Returns:
        [B, heads, Q, d]; zeros for a query without a visible window key.
    """
    num_keys = sum(p.rows * p.cols for p in parts)
    if k.shape[2] != num_keys or v.shape[2] != num_keys:
        raise ValueError(f'{k.shape[2]} keys, but the windows describe grids of {num_keys} keys')
    for p in parts:
        if tuple(p.row.shape) != (q.shape[0], q.shape[2]):
            raise ValueError(f'the windows are given for {tuple(p.row.shape)} queries, attention has '
                             f'{(q.shape[0], q.shape[2])}')
    if mask is not None:
        if mask.dim() != 4:
            raise ValueError(f'mask must be 4-D (broadcastable to [B, h, Q, K]), got {tuple(mask.shape)}')
        mask = mask.detach()
    return _LocalWindowAttention.apply(q, k, v, parts, mask, chunk_elements)
