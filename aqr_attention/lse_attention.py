"""Attention forward that also returns its log-sum-exp, and the matching backward
(the log-sum-exp bookkeeping of FlashAttention: Dao et al., NeurIPS 2022).

`local_bias_attention` (AQR's local-window bias, correction route) needs the row log-sum-exp of the
*unbiased* attention to correct it exactly inside the bias windows, and a backward that
takes a given output and log-sum-exp. The public `scaled_dot_product_attention` returns
neither, so these two functions are the only place that touches PyTorch's private
fused-kernel ops (`aten._scaled_dot_product_flash_attention_for_cpu` and its backward,
present since torch 2.2). Everywhere else (CUDA, other torch versions, or when the op's
schema changes) a query-chunked plain-tensor implementation computes the same thing with
memory bounded by `chunk_elements`. `tests/models/aqr/test_bias_attention.py` checks the op's
schema so that a torch upgrade that changes it fails loudly instead of silently slowing.
Statistics are float32 for float32 / half inputs and float64 for float64 inputs.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from .precision import compute_dtype

#: the private op's schema we rely on (argument names and order, return names)
EXPECTED_FORWARD_SCHEMA = ('query', 'key', 'value', 'dropout_p', 'is_causal', 'attn_mask', 'scale')
EXPECTED_BACKWARD_SCHEMA = ('grad_out', 'query', 'key', 'value', 'out', 'logsumexp', 'dropout_p',
                            'is_causal', 'attn_mask', 'scale')


def _op_arguments(op) -> Tuple[str, ...]:
    return tuple(a.name for a in op.default._schema.arguments)


def cpu_flash_ops_available() -> bool:
    """True when the private CPU flash ops exist with the schema this module was written for."""
    try:
        fwd = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
        bwd = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward
        return (_op_arguments(fwd) == EXPECTED_FORWARD_SCHEMA
                and _op_arguments(bwd) == EXPECTED_BACKWARD_SCHEMA)
    except (AttributeError, RuntimeError):
        return False


_CPU_FLASH = cpu_flash_ops_available()


def _use_flash(q: Tensor, force_fallback: bool) -> bool:
    return _CPU_FLASH and not force_fallback and q.device.type == 'cpu' \
        and q.dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _query_chunks(num_q: int, num_k: int, batch_heads: int, chunk_elements: int):
    step = max(1, chunk_elements // max(1, num_k * batch_heads))
    for start in range(0, num_q, step):
        yield slice(start, min(num_q, start + step))


def attention_with_lse(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None,
                       force_fallback: bool = False, chunk_elements: int = 1 << 24
                       ) -> Tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d) + mask) v and its row log-sum-exp ([B, h, Q], float32, or
    float64 for float64 inputs).

    q [B, h, Q, d]; k, v [B, h, K, d]; mask the additive key-padding mask [B, 1, 1, K]
    (`key_padding.additive_key_padding`) or None.
    No autograd: callers wrap it in their own `autograd.Function`.
    """
    acc = compute_dtype(q)
    if _use_flash(q, force_fallback):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, False, attn_mask=None if mask is None else mask.to(q.dtype))
        return out, lse.to(acc)
    scale = 1.0 / math.sqrt(q.shape[-1])
    out = torch.empty_like(q)
    lse = q.new_empty(q.shape[:-1], dtype=acc)
    for rows in _query_chunks(q.shape[2], k.shape[2], q.shape[0] * q.shape[1], chunk_elements):
        s = torch.einsum('bhqd,bhkd->bhqk', q[:, :, rows].to(acc), k.to(acc)) * scale
        if mask is not None:
            s = s + mask.to(acc)
        lse[:, :, rows] = torch.logsumexp(s, -1)
        out[:, :, rows] = torch.einsum('bhqk,bhkd->bhqd', torch.softmax(s, -1), v.to(acc)).to(q.dtype)
    return out, lse


def attention_backward_with_lse(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                                lse: Tensor, mask: Optional[Tensor] = None,
                                force_fallback: bool = False, chunk_elements: int = 1 << 24
                                ) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients of attention for probabilities P = exp(q k^T / sqrt(d) + mask - lse).

    `out` and `lse` may belong to a *different* (biased) attention: then P is that
    attention's probability on every key whose bias is zero, which is what
    `local_bias_attention` needs. The row term D = sum(grad_out * out) uses `out` as given.
    """
    acc = compute_dtype(q)
    if _use_flash(q, force_fallback):
        # the op takes the statistics in float32, or float64 for float64 inputs
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad_out.to(q.dtype).contiguous(), q, k, v, out.to(q.dtype).contiguous(), lse.to(acc).contiguous(),
            0.0, False, attn_mask=None if mask is None else mask.to(q.dtype))
    scale = 1.0 / math.sqrt(q.shape[-1])
    dq = torch.empty_like(q)
    dk = torch.zeros_like(k, dtype=acc)
    dv = torch.zeros_like(v, dtype=acc)
    kf, vf = k.to(acc), v.to(acc)
    for rows in _query_chunks(q.shape[2], k.shape[2], q.shape[0] * q.shape[1], chunk_elements):
        qc, go = q[:, :, rows].to(acc), grad_out[:, :, rows].to(acc)
        s = torch.einsum('bhqd,bhkd->bhqk', qc, kf) * scale
        if mask is not None:
            s = s + mask.to(acc)
        p = torch.exp(s - lse[:, :, rows, None].to(acc))
        dp = torch.einsum('bhqd,bhkd->bhqk', go, vf)
        row = (go * out[:, :, rows].to(acc)).sum(-1, keepdim=True)
        ds = p * (dp - row)
        dq[:, :, rows] = (torch.einsum('bhqk,bhkd->bhqd', ds, kf) * scale).to(q.dtype)
        dk += torch.einsum('bhqk,bhqd->bhkd', ds, qc) * scale
        dv += torch.einsum('bhqk,bhqd->bhkd', p, go)
    return dq, dk.to(k.dtype), dv.to(v.dtype)
