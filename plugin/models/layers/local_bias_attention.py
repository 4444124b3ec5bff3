"""Exact attention with a local-window bias, without a dense bias or score tensor (issue #4).

    out = softmax(q k^T / sqrt(d) + b + mask) v,   b = LocalWindowBias (zero outside windows)

Route (chosen from the measurements in DESIGN.md "AQR"): unbiased fused attention plus a
correction on the window keys only. With s0 the unbiased scores, L0 their row
log-sum-exp, o0 the unbiased output and p0 = exp(s0 - L0):

    S = sum_{k in window} p0_k (e^{b_k} - 1)
    L = L0 + log(1 + S),    out = (o0 + sum_{k in window} p0_k (e^{b_k} - 1) v_k) / (1 + S)

Backward: the fused backward fed the *biased* `out` and `L` gives exact gradients for
every key outside the windows (there P = exp(s0 - L)); on the window keys the true
probability is e^b times that, so dS, dq, dk, dv get a correction of (e^b - 1) times the
fused kernel's terms, and the bias gradient is the window's dS summed over heads.

How the window terms are computed: b is constant over one query's window in one modality
(scale * lidar_weight on its BEV window, scale * camera_weight on its camera window), so
each modality is a 2-D key grid (the BEV grid; the camera maps stacked view over view into
a (V*h) x w grid) on which every query owns one square window. Queries are grouped by the
grid tile their window centre falls in; a group gathers the keys of the bounding box of
its members' windows once and computes its scores with a batched matmul, then zeroes the
entries outside each member's own window (and, for cameras, outside its view). That is
exact, and much faster on CPU than gathering every query's window separately and
reducing it elementwise: nearby queries share most of their window keys, and a matmul
over a box beats a broadcast multiply + sum over the same numbers.

Extra memory is bounded by `bias.chunk_elements` per group (heads x members x box keys
scores, box keys x heads x d gathers), never O(Q * K); groups are recomputed in the
backward.
"""
import math
from typing import List, NamedTuple, Optional

import torch
from torch import Tensor

from .fused_attention_ops import attention_backward_with_lse, attention_with_lse

#: smallest tile side (grid cells) used to group queries. Smaller tiles give tighter boxes
#: but more groups, each costing ~20 small ops of Python/dispatch overhead per pass.
MIN_TILE = 24


class _Part(NamedTuple):
    """One modality's windows as square windows on a 2-D key grid."""
    offset: int      # index of the grid's first key
    rows: int        # grid rows (camera: V * h, views stacked)
    cols: int
    block: int       # rows per view: windows never cross a multiple of it (BEV: rows)
    radius: int      # window // 2
    row: Tensor      # [B, Q] long, window centre row on the grid
    col: Tensor      # [B, Q] long
    has: Tensor      # [B, Q] bool, the query has a window in this modality
    weight: int      # 0: lidar_weight, 1: camera_weight


class _Group(NamedTuple):
    part: int
    sample: int
    queries: Tensor  # [Qg] query indices
    keys: Tensor     # [Kb] key indices of the bounding box
    inside: Tensor   # [Qg, Kb] float 1/0: the key is in that query's window


def _parts(bias) -> List[_Part]:
    parts = []
    if bias.bev_shape is not None:
        h, w = bias.bev_shape
        c = bias.bev_center.long()
        parts.append(_Part(0, h, w, h, bias.bev_window // 2, c[..., 0], c[..., 1],
                           torch.ones_like(c[..., 0], dtype=torch.bool), 0))
    if bias.cam_shape is not None:
        nv, h, w = bias.cam_shape
        c = bias.cam_center.long()
        view = c[..., 0]
        parts.append(_Part(bias.num_bev_keys, nv * h, w, h, bias.cam_window // 2,
                           view.clamp(min=0) * h + c[..., 1], c[..., 2], view >= 0, 1))
    return parts


def _box_group(p: int, part: _Part, sample: int, queries: List[int], rows: List[int],
               cols: List[int], device) -> _Group:
    """The group of `queries` (centres rows/cols) with the bounding box of their windows."""
    r0, r1 = max(0, min(rows) - part.radius), min(part.rows - 1, max(rows) + part.radius)
    c0, c1 = max(0, min(cols) - part.radius), min(part.cols - 1, max(cols) + part.radius)
    kr = torch.arange(r0, r1 + 1, device=device)
    kc = torch.arange(c0, c1 + 1, device=device)
    qr = torch.tensor(rows, device=device)[:, None, None]
    qc = torch.tensor(cols, device=device)[:, None, None]
    inside = ((kr[:, None] - qr).abs() <= part.radius) & ((kc - qc).abs() <= part.radius)
    if part.block < part.rows:   # stacked camera views: stay in the query's own view
        inside &= (kr[:, None] // part.block) == (qr // part.block)
    keys = part.offset + (kr[:, None] * part.cols + kc).reshape(-1)
    return _Group(p, sample, torch.tensor(queries, device=device), keys,
                  inside.reshape(len(queries), -1).float())


def _groups(parts: List[_Part], heads: int, head_dim: int, budget: int) -> List[_Group]:
    """Queries grouped by window-centre tile; a group is split until its scores
    (heads x members x box keys) fit in `budget` elements."""
    groups = []
    for p, part in enumerate(parts):
        tile = max(2 * part.radius + 1, MIN_TILE)
        device = part.row.device
        for i, (rows, cols, has) in enumerate(zip(part.row.tolist(), part.col.tolist(), part.has.tolist())):
            tiles = {}
            for qi, (r, c, ok) in enumerate(zip(rows, cols, has)):
                if ok:
                    tiles.setdefault((r // tile, c // tile), []).append(qi)
            for members in tiles.values():
                pending = [members]
                while pending:
                    m = pending.pop()
                    g = _box_group(p, part, i, m, [rows[q] for q in m], [cols[q] for q in m], device)
                    if len(m) > 1 and heads * len(m) * max(g.keys.numel(), head_dim) > budget:
                        pending += [m[:len(m) // 2], m[len(m) // 2:]]
                    else:
                        groups.append(g)
    return groups


def _group_mask(mask: Optional[Tensor], g: _Group) -> Optional[Tensor]:
    """The additive mask of a group: [h or 1, Qg or 1, Kb] (None without mask)."""
    if mask is None:
        return None
    m = mask[g.sample if mask.shape[0] > 1 else 0]               # [h or 1, Q or 1, K]
    m = m if m.shape[1] == 1 else m.index_select(1, g.queries)
    return m.index_select(2, g.keys).float()


def _heads_first(x: Tensor, h: int, d: int) -> Tensor:
    """[N, h*d] gathered rows -> [h, N, d] (a view) for batched matmuls over heads."""
    return x.view(-1, h, d).transpose(0, 1)


class _LocalBiasAttention(torch.autograd.Function):
    """Per group: queries [h, Qg, d], box keys [h, Kb, d], scores [h, Qg, Kb]."""

    @staticmethod
    def forward(ctx, q, k, v, lidar_weight, camera_weight, scale, parts, mask,
                chunk_elements, force_fallback):
        b, h, nq, d = q.shape
        sm = 1.0 / math.sqrt(d)
        o0, lse0 = attention_with_lse(q, k, v, mask, force_fallback, chunk_elements)
        weights = (lidar_weight.float(), camera_weight.float())
        # e^b - 1 per query and modality: b is constant over one query's window
        eb1 = [torch.expm1(scale.float() * weights[part.weight]) for part in parts]
        groups = _groups(parts, h, d, chunk_elements)
        # [B, K, h*d]: a gather moves one contiguous row of h*d numbers per key (a view,
        # no copy, for the head-split projections attention modules produce)
        kt, vt = _keys_last(k), _keys_last(v)
        qs = q.float() * sm
        s_sum = lse0.new_zeros(b, h, nq)
        corr = lse0.new_zeros(b, h, nq, d)
        for g in groups:
            i, qi = g.sample, g.queries
            kb = _heads_first(kt[i].index_select(0, g.keys), h, d)
            vb = _heads_first(vt[i].index_select(0, g.keys), h, d)
            s = torch.matmul(qs[i].index_select(1, qi), kb.transpose(1, 2))   # [h, Qg, Kb]
            m = _group_mask(mask, g)
            if m is not None:
                s += m
            s -= lse0[i].index_select(1, qi)[..., None]
            # p0 (e^b - 1) on the window keys, 0 on the rest of the box
            c = s.exp_().mul_(g.inside * eb1[g.part][i, qi, None])
            s_sum[i].index_add_(1, qi, c.sum(-1))
            corr[i].index_add_(1, qi, torch.matmul(c, vb))
        lse = lse0 + torch.log1p(s_sum)
        out = ((o0.float() + corr) / (1.0 + s_sum)[..., None]).to(q.dtype)
        ctx.save_for_backward(q, k, v, out, lse, lidar_weight, camera_weight, scale, mask, *eb1)
        ctx.groups, ctx.chunk_elements, ctx.force_fallback = groups, chunk_elements, force_fallback
        ctx.part_weights = [part.weight for part in parts]
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, lidar_weight, camera_weight, scale, mask, *eb1 = ctx.saved_tensors
        b, h, nq, d = q.shape
        sm = 1.0 / math.sqrt(d)
        grad_out = grad_out.contiguous()
        dq, dk, dv = attention_backward_with_lse(grad_out, q, k, v, out, lse, mask,
                                                 ctx.force_fallback, ctx.chunk_elements)
        kt, vt = _keys_last(k), _keys_last(v)
        qs, go = q.float() * sm, grad_out.float()
        row_term = (go * out.float()).sum(-1)                              # D = rowsum(dO * O) [B, h, Q]
        dq_corr = torch.zeros_like(qs)
        dkt, dk_separate = _accumulator(dk)
        dvt, dv_separate = _accumulator(dv)
        # d loss / d b per query and modality: the window's true dS summed over heads and keys
        db = [lse.new_zeros(b, nq) for _ in eb1]
        for g in ctx.groups:
            i, qi = g.sample, g.queries
            kb = _heads_first(kt[i].index_select(0, g.keys), h, d)
            vb = _heads_first(vt[i].index_select(0, g.keys), h, d)
            qg, gog = qs[i].index_select(1, qi), go[i].index_select(1, qi)    # [h, Qg, d]
            s = torch.matmul(qg, kb.transpose(1, 2))
            m = _group_mask(mask, g)
            if m is not None:
                s += m
            s -= lse[i].index_select(1, qi)[..., None]
            p = s.exp_()                                  # what the fused backward assumed
            gs = torch.matmul(gog, vb.transpose(1, 2))
            gs -= row_term[i].index_select(1, qi)[..., None]
            gs *= p                                       # fused dS
            gs *= g.inside                                # ... on the window keys only
            e = eb1[g.part][i, qi]                        # [Qg]
            db[g.part][i].index_add_(0, qi, gs.sum((0, 2)) * (e + 1.0))
            gs *= e[:, None]                              # true dS - fused dS
            p *= g.inside * e[:, None]                    # true P - fused P
            dq_corr[i].index_add_(1, qi, torch.matmul(gs, kb))
            dkt[i].index_add_(0, g.keys, torch.matmul(gs.transpose(1, 2), qg).transpose(0, 1).reshape(-1, h * d))
            dvt[i].index_add_(0, g.keys, torch.matmul(p.transpose(1, 2), gog).transpose(0, 1).reshape(-1, h * d))
        dq = dq.float() + dq_corr * sm
        if dk_separate:
            dk = dk.float() + dkt.view(b, -1, h, d).transpose(1, 2)
        if dv_separate:
            dv = dv.float() + dvt.view(b, -1, h, d).transpose(1, 2)
        db_w = [torch.zeros_like(lse[..., 0, :]) for _ in range(2)]   # per weight [B, Q]
        for part_weight, db_part in zip(ctx.part_weights, db):
            db_w[part_weight] = db_w[part_weight] + db_part
        s = scale.float()
        d_lidar = (s * db_w[0]).to(lidar_weight.dtype) if ctx.needs_input_grad[3] else None
        d_cam = (s * db_w[1]).to(camera_weight.dtype) if ctx.needs_input_grad[4] else None
        d_scale = None
        if ctx.needs_input_grad[5]:
            d_scale = (lidar_weight.float() * db_w[0] + camera_weight.float() * db_w[1]).sum().to(scale.dtype)
        return (dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), d_lidar, d_cam, d_scale,
                None, None, None, None)


def _keys_last(x: Tensor) -> Tensor:
    """[B, h, K, d] -> [B, K, h*d]: one contiguous row per key (a view, no copy, for the
    head-split projections attention modules produce)."""
    b, h, k, d = x.shape
    return x.transpose(1, 2).reshape(b, k, h * d).float()


def _accumulator(grad: Tensor):
    """A [B, K, h*d] float32 view of `grad` to scatter into in place (the fused kernel
    returns key gradients in that layout), else a fresh zero buffer (True = add it later)."""
    b, h, k, d = grad.shape
    t = grad.transpose(1, 2)
    if grad.dtype == torch.float32 and t.is_contiguous():
        return t.view(b, k, h * d), False
    return grad.new_zeros(b, k, h * d, dtype=torch.float32), True


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
    out = _LocalBiasAttention.apply(q, k, v, bias.lidar_weight, bias.camera_weight, bias.scale,
                                    _parts(bias), mask, bias.chunk_elements, force_fallback)
    if dead is not None:
        out = out.masked_fill(dead.expand(*out.shape[:-1], 1), 0.0)
    return out
