"""Exact attention with a local-window bias, without a dense bias or score tensor.

    out = softmax(q k^T / sqrt(d) + b + padding) v,   b = LocalWindowBias (zero outside windows)

(padding: -inf on the keys of the [B, K] key-padding mask, `key_padding.py`)

Two ways to compute it, chosen by `backends.py`:

* **Direct** ('triton', `triton_bias_attention.py`): one flash-attention pass over all keys
  that adds b inside the window while it goes. Used on CUDA.
* **Correction** ('cpu_kernel' and 'torch'): an unbiased fused attention plus a correction
  on the window keys only. With s0 the unbiased scores, L0 their row log-sum-exp, o0 the
  unbiased output and p0 = exp(s0 - L0):

      S = sum_{k in window} p0_k (e^{b_k} - 1)
      L = L0 + log(1 + S),    out = (o0 + sum_{k in window} p0_k (e^{b_k} - 1) v_k) / (1 + S)

  The rounding error of o0 and S is multiplied by 1 / (1 + S), which is large when b < 0
  and the window holds most of a row's attention (at b = -5 and a window share of 0.999,
  1 + S is 0.007). Rows whose factor exceeds `MAX_AMPLIFICATION` are therefore recomputed
  directly (their own scores over all keys, in query chunks bounded by the bias's
  `chunk_elements`), forward and backward, so the route's error stays within
  `MAX_AMPLIFICATION` times that of the fused kernel on every row.

  Backward: the fused backward fed the *biased* `out` and `L` gives exact gradients for
  every key outside the windows (there P = exp(s0 - L)); on the window keys the true
  probability is e^b times that, so dS, dq, dk, dv get a correction of (e^b - 1) times the
  fused kernel's terms, and the bias gradient is the window's dS summed over heads. The
  window terms come from the route object `backends.window_route` picks: the compiled
  kernel (`csrc/window_attention_cpu.cpp`) or the grouped boxes of `grouped_route.py`;
  both are exact.

  Extra memory is O(Q * h * d), never O(Q * K): the kernel allocates nothing per key, the
  grouped route per-group buffers of at most `bias.chunk_elements` numbers.

Precision: all routes accumulate in float32 (float64 for float64 inputs) and return the
input dtype; half-precision inputs are upcast before the correction route's fused pass,
whose error the correction would otherwise amplify.
"""
import math
from typing import Optional

import torch
from torch import Tensor

from . import window_attention_cpu as window_kernel
from .backends import bias_attention_backend
from .grouped_route import key_padding_rows
from .key_padding import additive_key_padding, check_key_padding
from .lse_attention import attention_backward_with_lse, attention_with_lse
from .precision import autocast_off, check_dtypes, compute_dtype

#: rows whose correction factor 1 / (1 + S) exceeds this are recomputed directly
MAX_AMPLIFICATION = 16.0


def _direct_chunks(bad: Tensor, heads: int, num_keys: int, budget: int):
    """(sample, query indices) chunks of the rows flagged in bad [B, Q], each chunk's
    [heads, rows, K] scores within `budget` elements (at least one row)."""
    step = max(1, budget // max(1, heads * num_keys))
    for i in range(bad.shape[0]):
        rows = bad[i].nonzero().flatten()
        for start in range(0, rows.numel(), step):
            yield i, rows[start:start + step]


def _direct_rows(qs_rows, k, v, mask, bias, i, rows, lidar_weight, camera_weight, scale):
    """softmax(qs k^T + bias + padding) v for `rows` of sample i, densely over the keys:
    out [h, n, d] and lse [h, n]. Differentiable in every input."""
    s = torch.matmul(qs_rows, k.transpose(1, 2))                         # [h, n, K]
    s = s + bias.dense_rows(i, rows, lidar_weight, camera_weight, scale).to(s.dtype)
    if mask is not None:
        s = s + key_padding_rows(mask, i).to(s.dtype)
    lse = torch.logsumexp(s, -1)
    return torch.matmul(torch.softmax(s, -1), v), lse


class _LocalBiasAttention(torch.autograd.Function):
    """The correction route (q, k, v already in the compute dtype)."""

    @staticmethod
    @autocast_off
    def forward(ctx, q, k, v, lidar_weight, camera_weight, scale, bias, windows, mask, force_fallback):
        b, h, nq, d = q.shape
        sm = 1.0 / math.sqrt(d)
        chunk = bias.chunk_elements
        o0, lse0 = attention_with_lse(q, k, v, mask, force_fallback, chunk)
        # e^b - 1 per (lidar, camera) x query: b is constant over one query's window
        eb1 = torch.expm1(scale.to(q.dtype) * torch.stack([lidar_weight.to(q.dtype), camera_weight.to(q.dtype)]))
        qs = (q * sm).contiguous()   # index_select on Q copies a strided source whole
        lse0 = lse0.contiguous()
        s_sum, corr = windows.corrections(qs, k, v, mask, eb1, lse0)
        denom = 1.0 + s_sum
        bad = (denom * MAX_AMPLIFICATION < 1.0).any(1)                    # [B, Q]
        lse = lse0 + torch.log1p(s_sum.clamp(min=-1.0 + 1.0 / MAX_AMPLIFICATION))
        out = (o0 + corr) / denom.clamp(min=1.0 / MAX_AMPLIFICATION)[..., None]
        if bad.any():
            for i, rows in _direct_chunks(bad, h, k.shape[2], chunk):
                o_r, l_r = _direct_rows(qs[i].index_select(1, rows), k[i], v[i], mask, bias, i, rows,
                                        lidar_weight, camera_weight, scale)
                out[i].index_copy_(1, rows, o_r)
                lse[i].index_copy_(1, rows, l_r)
        ctx.save_for_backward(q, k, v, out, lse, lidar_weight, camera_weight, scale, mask, eb1, bad)
        ctx.windows, ctx.bias, ctx.force_fallback = windows, bias, force_fallback
        return out

    @staticmethod
    @autocast_off
    def backward(ctx, grad_out):
        q, k, v, out, lse, lidar_weight, camera_weight, scale, mask, eb1, bad = ctx.saved_tensors
        b, h, nq, d = q.shape
        sm = 1.0 / math.sqrt(d)
        chunk = ctx.bias.chunk_elements
        go = grad_out.to(q.dtype).contiguous()
        any_bad = bool(bad.any())
        if any_bad:   # those rows' gradients are computed directly below
            go = go.masked_fill(bad[:, None, :, None], 0.0)
        dq, dk, dv = attention_backward_with_lse(go, q, k, v, out, lse, mask, ctx.force_fallback, chunk)
        # the window corrections are added to dk and dv in place: on the window keys the
        # true dS is e^b times the fused one, so w = e^b - 1 gives true - fused terms and
        # (w + 1) * sum(fused dS) the bias gradient
        dk, dv = window_kernel.as_key_buffer(dk, q.dtype), window_kernel.as_key_buffer(dv, q.dtype)
        qs = (q * sm).contiguous()
        row_term = (go * out).sum(-1)                                      # D = rowsum(dO * O) [B, h, Q]
        dq_corr = torch.zeros_like(qs)
        db = ctx.windows.backward(qs, k, v, go, row_term, lse.contiguous(), mask, eb1, dq_corr, dk, dv)
        dq = dq.to(q.dtype) + dq_corr * sm
        s = scale.to(q.dtype)
        d_lidar, d_cam = s * db[0], s * db[1]
        d_scale = (lidar_weight.to(q.dtype) * db[0] + camera_weight.to(q.dtype) * db[1]).sum()
        if any_bad:
            d_scale = d_scale + _direct_backward(ctx.bias, q, k, v, mask, grad_out, bad, lidar_weight,
                                                 camera_weight, scale, dq, dk, dv, d_lidar, d_cam, chunk)
        return (dq, dk, dv, d_lidar.to(lidar_weight.dtype) if ctx.needs_input_grad[3] else None,
                d_cam.to(camera_weight.dtype) if ctx.needs_input_grad[4] else None,
                d_scale.to(scale.dtype) if ctx.needs_input_grad[5] else None, None, None, None, None)


def _direct_backward(bias, q, k, v, mask, grad_out, bad, lidar_weight, camera_weight, scale, dq, dk, dv,
                     d_lidar, d_cam, chunk) -> Tensor:
    """Adds the gradients of the directly computed rows to dq, dk, dv, d_lidar, d_cam (in
    place) and returns their scale gradient."""
    h, d = q.shape[1], q.shape[3]
    d_scale = scale.new_zeros((), dtype=q.dtype)
    with torch.enable_grad():
        for i, rows in _direct_chunks(bad, h, k.shape[2], chunk):
            leaves = [t.detach().requires_grad_() for t in (
                q[i].index_select(1, rows), k[i], v[i], lidar_weight.to(q.dtype), camera_weight.to(q.dtype),
                scale.to(q.dtype))]
            qr, ki, vi, lw, cw, sc = leaves
            o_r, _ = _direct_rows(qr / math.sqrt(d), ki, vi, mask, bias, i, rows, lw, cw, sc)
            g = torch.autograd.grad(o_r, leaves, grad_out[i].index_select(1, rows).to(q.dtype), allow_unused=True)
            dq[i].index_add_(1, rows, g[0])
            dk[i] += g[1]
            dv[i] += g[2]
            d_lidar += g[3] if g[3] is not None else 0.0
            d_cam += g[4] if g[4] is not None else 0.0
            d_scale = d_scale + (g[5] if g[5] is not None else 0.0)
    return d_scale


def local_bias_attention(q: Tensor, k: Tensor, v: Tensor, bias, key_padding_mask: Optional[Tensor] = None,
                         force_fallback: bool = False) -> Tensor:
    """softmax(q k^T / sqrt(d) + bias + padding) v, exactly, for a `LocalWindowBias`.

    Args:
        q: [B, heads, Q, d]; k, v: [B, heads, K, d] with K = bias.num_keys; float32,
            float64, float16 or bfloat16 (the result has q's dtype; another dtype is a
            TypeError naming it).
        bias: a `LocalWindowBias`.
        key_padding_mask: optional bool [B, K], True = padding (ignored key), e.g. image
            padding; a sample whose keys are all padding gets zeros.
        force_fallback: on the correction route, use the plain-tensor log-sum-exp pass
            even where PyTorch's fused CPU kernel exists (tests compare the two).
    Returns:
        [B, heads, Q, d].
    """
    check_dtypes(q=q, k=k, v=v)
    b, h, nq, _ = q.shape
    if k.shape[2] != bias.num_keys:
        raise ValueError(f'{k.shape[2]} keys, but the bias describes {bias.num_keys} ({bias.layout})')
    if bias.lidar_weight.shape != (b, nq):
        raise ValueError(f'the bias has weights for {tuple(bias.lidar_weight.shape)} queries, '
                         f'attention has {(b, nq)}')
    dead = None
    if check_key_padding(key_padding_mask, b, k.shape[2]) is not None:
        dead = key_padding_mask.all(1)                                         # [B]
        if dead.any():   # attends to every key, zeroed below: no 0 / 0
            key_padding_mask = key_padding_mask & ~dead[:, None]
        else:
            dead = None
    backend = bias_attention_backend(q, k, v, None if key_padding_mask is None else key_padding_mask[:, None, None])
    acc = compute_dtype(q)
    # additive, in the dtype the route reads it in: the Triton kernels take q's
    mask = additive_key_padding(key_padding_mask, b, k.shape[2], q.dtype if backend == 'triton' else acc)
    if backend == 'triton':
        from .triton_bias_attention import triton_bias_attention
        out = triton_bias_attention(q, k, v, bias, mask)
    else:
        windows = bias.windows(backend, h, q.shape[-1])
        out = _LocalBiasAttention.apply(q.to(acc), k.to(acc), v.to(acc), bias.lidar_weight, bias.camera_weight,
                                        bias.scale, bias, windows, mask, force_fallback).to(q.dtype)
    if dead is not None:
        out = out.masked_fill(dead[:, None, None, None], 0.0)
    return out
