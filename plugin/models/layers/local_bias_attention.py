"""Exact attention with a local-window bias, without a dense bias or score tensor.

    out = softmax(q k^T / sqrt(d) + b + mask) v,   b = LocalWindowBias (zero outside windows)

Route (its cost against unbiased SDPA and the dense bias: tools/benchmark/attention_bias.py):
unbiased fused attention plus a correction on the window keys only. With s0 the unbiased
scores, L0 their row log-sum-exp, o0 the unbiased output and p0 = exp(s0 - L0):

    S = sum_{k in window} p0_k (e^{b_k} - 1)
    L = L0 + log(1 + S),    out = (o0 + sum_{k in window} p0_k (e^{b_k} - 1) v_k) / (1 + S)

Backward: the fused backward fed the *biased* `out` and `L` gives exact gradients for
every key outside the windows (there P = exp(s0 - L)); on the window keys the true
probability is e^b times that, so dS, dq, dk, dv get a correction of (e^b - 1) times the
fused kernel's terms, and the bias gradient is the window's dS summed over heads.

How the window terms are computed: on CPU, by the compiled kernel
(`plugin/ops/csrc/window_attention_cpu.cpp`), which walks each (query, head)'s window
rows; elsewhere (CUDA, or the extension not built) with tensor ops: b is constant over one
query's window in one modality (scale * lidar_weight on its BEV window, scale *
camera_weight on its camera window), so the grouped-box scheme of `window_groups.py`
applies: a group of nearby queries scores the bounding box of their windows with one
matmul, then zeroes the entries outside each member's own window. Both are exact.

Extra memory is O(Q * h * d), never O(Q * K): the kernel allocates nothing per key, and
the grouped route a few per-group buffers of at most `bias.chunk_elements` numbers (heads
x members x box keys scores, box keys x heads x d gathers; only a single window wider
than that exceeds it). Window scores are recomputed in the backward. Without the private
fused CPU kernel (CUDA, other torch versions) the unbiased pass is the chunked fallback,
its [heads, query chunk, K] blocks bounded by the same budget.
"""
import math
from typing import Optional

import torch
from torch import Tensor

from ...ops import window_attention_cpu as window_kernel
from .fused_attention_ops import attention_backward_with_lse, attention_with_lse
from .window_groups import autocast_off, gather_box, group_window_backward


def _group_corrections(qs, k, v, mask, groups, eb1, lse0):
    """Pure-PyTorch window corrections (CUDA, or no compiled kernel): per group, the box
    scores, p0 (e^b - 1) kept on the window keys only. Returns (s_sum, corr)."""
    b, h, nq, d = qs.shape
    s_sum = lse0.new_zeros(b, h, nq)
    corr = lse0.new_zeros(b, h, nq, d)
    for g in groups:
        i, qi = g.sample, g.queries
        s = g.scores(qs, gather_box(g, k), mask)                           # [h, Qg, Kb]
        s -= lse0[i].index_select(1, qi)[..., None]
        c = s.exp_().mul_(g.inside() * eb1[g.part.index, i, qi, None])
        s_sum[i].index_add_(1, qi, c.sum(-1))
        corr[i].index_add_(1, qi, torch.matmul(c, gather_box(g, v)))
    return s_sum, corr


class _LocalBiasAttention(torch.autograd.Function):
    """Per group: queries [h, Qg, d], box keys [h, Kb, d], scores [h, Qg, Kb]."""

    @staticmethod
    @autocast_off
    def forward(ctx, q, k, v, lidar_weight, camera_weight, scale, windows, mask,
                chunk_elements, force_fallback):
        b, h, nq, d = q.shape
        sm = 1.0 / math.sqrt(d)
        o0, lse0 = attention_with_lse(q, k, v, mask, force_fallback, chunk_elements)
        # e^b - 1 per (lidar, camera) x query: b is constant over one query's window
        eb1 = torch.expm1(scale.float() * torch.stack([lidar_weight.float(), camera_weight.float()]))
        qs = (q.float() * sm).contiguous()   # index_select on Q copies a strided source whole
        lse0 = lse0.contiguous()
        if isinstance(windows, window_kernel.PackedWindows):
            s_sum, corr = window_kernel.correction_forward(qs, k, v, mask, windows, eb1, lse0)
        else:
            s_sum, corr = _group_corrections(qs, k, v, mask, windows, eb1, lse0)
        lse = lse0 + torch.log1p(s_sum)
        out = ((o0.float() + corr) / (1.0 + s_sum)[..., None]).to(q.dtype)
        ctx.save_for_backward(q, k, v, out, lse, lidar_weight, camera_weight, scale, mask, eb1)
        ctx.windows, ctx.chunk_elements, ctx.force_fallback = windows, chunk_elements, force_fallback
        return out

    @staticmethod
    @autocast_off
    def backward(ctx, grad_out):
        q, k, v, out, lse, lidar_weight, camera_weight, scale, mask, eb1 = ctx.saved_tensors
        b, h, nq, d = q.shape
        sm = 1.0 / math.sqrt(d)
        grad_out = grad_out.contiguous()
        dq, dk, dv = attention_backward_with_lse(grad_out, q, k, v, out, lse, mask,
                                                 ctx.force_fallback, ctx.chunk_elements)
        # the window corrections are added to dk and dv in place: on the window keys the
        # true dS is e^b times the fused one, so w = e^b - 1 gives true - fused terms and
        # (w + 1) * sum(fused dS) the bias gradient
        dk, dv = window_kernel.as_key_buffer(dk), window_kernel.as_key_buffer(dv)
        qs, go = (q.float() * sm).contiguous(), grad_out.float()   # grad_out: contiguous above
        lse_c = lse.contiguous()
        row_term = (go * out.float()).sum(-1)                              # D = rowsum(dO * O) [B, h, Q]
        dq_corr = torch.zeros_like(qs)
        backward = (window_kernel.window_backward if isinstance(ctx.windows, window_kernel.PackedWindows)
                    else group_window_backward)
        db = backward(qs, k, v, go, row_term, lse_c, mask, ctx.windows, eb1, dq_corr, dk, dv)
        dq = dq.float() + dq_corr * sm
        s = scale.float()
        d_lidar = (s * db[0]).to(lidar_weight.dtype) if ctx.needs_input_grad[3] else None
        d_cam = (s * db[1]).to(camera_weight.dtype) if ctx.needs_input_grad[4] else None
        d_scale = None
        if ctx.needs_input_grad[5]:
            d_scale = (lidar_weight.float() * db[0] + camera_weight.float() * db[1]).sum().to(scale.dtype)
        return (dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), d_lidar, d_cam, d_scale,
                None, None, None, None)


def local_bias_attention(q: Tensor, k: Tensor, v: Tensor, bias, mask: Optional[Tensor] = None,
                         force_fallback: bool = False) -> Tensor:
    """softmax(q k^T / sqrt(d) + bias + mask) v, exactly, for a `LocalWindowBias`.

    Args:
        q: [B, heads, Q, d]; k, v: [B, heads, K, d] with K = bias.num_keys.
        bias: a `LocalWindowBias`.
        mask: optional additive float mask broadcastable to [B, heads, Q, K] (-inf =
            ignored key), e.g. image padding; a query whose keys are all masked gets zeros.
        force_fallback: use the plain-tensor log-sum-exp path even where the fused CPU
            kernel exists (tests compare the two).
    Returns:
        [B, heads, Q, d].
    """
    b, h, nq, _ = q.shape
    if k.shape[2] != bias.num_keys:
        raise ValueError(f'{k.shape[2]} keys, but the bias describes {bias.num_keys} '
                         f'(BEV {bias.bev_shape}, cameras {bias.cam_shape})')
    if bias.lidar_weight.shape != (b, nq):
        raise ValueError(f'the bias has weights for {tuple(bias.lidar_weight.shape)} queries, '
                         f'attention has {(b, nq)}')
    dead = None
    if mask is not None:
        mask = mask.detach()
        if mask.dim() != 4:
            raise ValueError(f'mask must be 4-D (broadcastable to [B, h, Q, K]), got {tuple(mask.shape)}')
        dead = torch.isinf(mask).all(-1, keepdim=True) & (mask < 0).all(-1, keepdim=True)
        if dead.any():
            mask = mask.masked_fill(dead, 0.0)
        else:
            dead = None
    # the window terms: compiled kernel on CPU, grouped boxes elsewhere
    windows = bias.packed_windows() if window_kernel.use_kernel(q) else bias.groups(h, q.shape[-1])
    out = _LocalBiasAttention.apply(q, k, v, bias.lidar_weight, bias.camera_weight, bias.scale,
                                    windows, mask, bias.chunk_elements, force_fallback)
    if dead is not None:
        out = out.masked_fill(dead.expand(*out.shape[:-1], 1), 0.0)
    return out
