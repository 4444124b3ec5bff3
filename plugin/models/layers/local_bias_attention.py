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

Extra memory is O(Q * h * d) plus a few per-group buffers of at most `bias.chunk_elements`
numbers (heads x members x box keys scores, box keys x heads x d gathers; only a single
window wider than that exceeds it), never O(Q * K); the groups' scores are recomputed in
the backward. Without the private fused CPU kernel (CUDA, other torch versions) the
unbiased pass is the chunked fallback, its [heads, query chunk, K] blocks bounded by
the same budget.
"""
import math
from typing import List, NamedTuple, Optional

import torch
from torch import Tensor

from .fused_attention_ops import attention_backward_with_lse, attention_with_lse

#: side (grid cells) of the tiles queries are grouped by. Smaller tiles give tighter boxes
#: (less gathered and multiplied), larger ones fewer groups (each ~40 small ops of Python
#: and dispatch overhead). A cost model calibrated on the benchmark's profile (80 ns per
#: query x box key, 500 ns per box key, 0.3 ms per group) is flat between 16 and 24 for
#: windows 5 to 25 (at 900 queries on the 180 x 180 grid and 6 x 40 x 100 maps).
TILE = 20


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
    """Queries of one sample sharing the bounding box rows r0:r1, cols c0:c1 of their
    windows on one part's grid."""
    part: _Part
    sample: int
    queries: Tensor  # [Qg] query indices
    r0: int
    r1: int          # exclusive
    c0: int
    c1: int          # exclusive
    row_in: Tensor   # [Qg, box rows] float 1/0: the row is in the query's window (and view)
    col_in: Tensor   # [Qg, box cols] float 1/0: the column is in the query's window

    def box(self, x: Tensor) -> Tensor:
        """The box of `x` [B, h, K, d] (any strides) as a [box rows, box cols, h, d] view,
        so that a gather is one strided copy and a scatter one in-place add, with no index
        tensors. Keys outermost: attention modules' head-split projections (and the
        fused kernel's key gradients) are stored key-major, [B, K, h, d], so the box's
        rows are then contiguous runs of box cols x h x d numbers."""
        p = self.part
        grid = x[self.sample].transpose(0, 1)[p.offset:p.offset + p.rows * p.cols]
        return grid.unflatten(0, (p.rows, p.cols))[self.r0:self.r1, self.c0:self.c1]

    def inside(self) -> Tensor:
        """[Qg, Kb] float 1/0: the box key is in that query's window. Built when used,
        from its separable row and column parts (saving it would cost Q x box keys)."""
        return (self.row_in[:, :, None] * self.col_in[:, None, :]).flatten(1)

    def keys(self) -> Tensor:
        """Key indices of the box, row-major [Kb] (only needed to gather a mask)."""
        p, device = self.part, self.queries.device
        rows = torch.arange(self.r0, self.r1, device=device)
        cols = torch.arange(self.c0, self.c1, device=device)
        return p.offset + (rows[:, None] * p.cols + cols).reshape(-1)


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


def _box_group(part: _Part, sample: int, queries: List[int], rows: List[int], cols: List[int],
               device) -> _Group:
    """The group of `queries` (centres rows/cols) with the bounding box of their windows."""
    r0, r1 = max(0, min(rows) - part.radius), min(part.rows, max(rows) + part.radius + 1)
    c0, c1 = max(0, min(cols) - part.radius), min(part.cols, max(cols) + part.radius + 1)
    kr = torch.arange(r0, r1, device=device)
    kc = torch.arange(c0, c1, device=device)
    qr = torch.tensor(rows, device=device)[:, None]
    qc = torch.tensor(cols, device=device)[:, None]
    row_in = (kr - qr).abs() <= part.radius
    if part.block < part.rows:   # stacked camera views: stay in the query's own view
        row_in &= (kr // part.block) == (qr // part.block)
    return _Group(part, sample, torch.tensor(queries, device=device), r0, r1, c0, c1,
                  row_in.float(), ((kc - qc).abs() <= part.radius).float())


def _groups(parts: List[_Part], heads: int, head_dim: int, budget: int) -> List[_Group]:
    """Queries grouped by window-centre tile; a group is halved until its scores
    (heads x members x box keys) and its gathered keys (box keys x heads x head_dim) fit
    in `budget` elements, or it is down to one query (then its window alone is the box)."""
    groups = []
    for part in parts:
        device = part.row.device
        for i, (rows, cols, has) in enumerate(zip(part.row.tolist(), part.col.tolist(), part.has.tolist())):
            tiles = {}
            for qi, (r, c, ok) in enumerate(zip(rows, cols, has)):
                if ok:
                    tiles.setdefault((r // TILE, c // TILE), []).append(qi)
            for members in tiles.values():
                pending = [members]
                while pending:
                    m = pending.pop()
                    g = _box_group(part, i, m, [rows[q] for q in m], [cols[q] for q in m], device)
                    box_keys = g.row_in.shape[1] * g.col_in.shape[1]
                    if len(m) > 1 and heads * max(len(m), head_dim) * box_keys > budget:
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
    return m.index_select(2, g.keys()).float()


class _LocalBiasAttention(torch.autograd.Function):
    """Per group: queries [h, Qg, d], box keys [h, Kb, d], scores [h, Qg, Kb]."""

    @staticmethod
    def forward(ctx, q, k, v, lidar_weight, camera_weight, scale, parts, mask,
                chunk_elements, force_fallback):
        b, h, nq, d = q.shape
        sm = 1.0 / math.sqrt(d)
        o0, lse0 = attention_with_lse(q, k, v, mask, force_fallback, chunk_elements)
        # e^b - 1 per (lidar, camera) x query: b is constant over one query's window
        eb1 = torch.expm1(scale.float() * torch.stack([lidar_weight.float(), camera_weight.float()]))
        groups = _groups(parts, h, d, chunk_elements)
        qs = (q.float() * sm).contiguous()   # index_select on Q copies a strided source whole
        lse0 = lse0.contiguous()
        s_sum = lse0.new_zeros(b, h, nq)
        corr = lse0.new_zeros(b, h, nq, d)
        for g in groups:
            i, qi = g.sample, g.queries
            kb, vb = _gather_box(g, k), _gather_box(g, v)
            s = torch.matmul(qs[i].index_select(1, qi), kb.transpose(1, 2))   # [h, Qg, Kb]
            m = _group_mask(mask, g)
            if m is not None:
                s += m
            s -= lse0[i].index_select(1, qi)[..., None]
            # p0 (e^b - 1) on the window keys, 0 on the rest of the box
            c = s.exp_().mul_(g.inside() * eb1[g.part.weight, i, qi, None])
            s_sum[i].index_add_(1, qi, c.sum(-1))
            corr[i].index_add_(1, qi, torch.matmul(c, vb))
        lse = lse0 + torch.log1p(s_sum)
        out = ((o0.float() + corr) / (1.0 + s_sum)[..., None]).to(q.dtype)
        ctx.save_for_backward(q, k, v, out, lse, lidar_weight, camera_weight, scale, mask, eb1)
        ctx.groups, ctx.chunk_elements, ctx.force_fallback = groups, chunk_elements, force_fallback
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, lidar_weight, camera_weight, scale, mask, eb1 = ctx.saved_tensors
        b, h, nq, d = q.shape
        sm = 1.0 / math.sqrt(d)
        grad_out = grad_out.contiguous()
        dq, dk, dv = attention_backward_with_lse(grad_out, q, k, v, out, lse, mask,
                                                 ctx.force_fallback, ctx.chunk_elements)
        # the window corrections are added in place, through box views of dk and dv
        dk, dv = dk.float(), dv.float()
        qs, go = (q.float() * sm).contiguous(), grad_out.float()   # grad_out: contiguous above
        lse_c = lse.contiguous()
        row_term = (go * out.float()).sum(-1)                              # D = rowsum(dO * O) [B, h, Q]
        dq_corr = torch.zeros_like(qs)
        # d loss / d b per (lidar, camera) x query: the window's true dS summed over heads, keys
        db = torch.zeros_like(eb1)
        for g in ctx.groups:
            i, qi = g.sample, g.queries
            kb, vb = _gather_box(g, k), _gather_box(g, v)
            qg, gog = qs[i].index_select(1, qi), go[i].index_select(1, qi)    # [h, Qg, d]
            s = torch.matmul(qg, kb.transpose(1, 2))
            m = _group_mask(mask, g)
            if m is not None:
                s += m
            s -= lse_c[i].index_select(1, qi)[..., None]
            p = s.exp_()                                  # what the fused backward assumed
            gs = torch.matmul(gog, vb.transpose(1, 2))
            gs -= row_term[i].index_select(1, qi)[..., None]
            gs *= p                                       # fused dS
            # on the window keys the true dS is e^b times the fused one: the bias gradient
            # is its sum, (e + 1) * sum(fused dS), and the corrections are e * fused terms
            inside = g.inside()
            e = eb1[g.part.weight, i, qi]                 # [Qg]
            db[g.part.weight, i].index_add_(0, qi, (gs.sum(0) * inside).sum(-1) * (e + 1.0))
            correction = inside * e[:, None]              # [Qg, Kb], zero outside the windows
            gs *= correction                              # true dS - fused dS
            p *= correction                               # true P - fused P
            dq_corr[i].index_add_(1, qi, torch.matmul(gs, kb))
            _add_to_box(g, dk, torch.matmul(gs.transpose(1, 2), qg))
            _add_to_box(g, dv, torch.matmul(p.transpose(1, 2), gog))
        dq = dq.float() + dq_corr * sm
        s = scale.float()
        d_lidar = (s * db[0]).to(lidar_weight.dtype) if ctx.needs_input_grad[3] else None
        d_cam = (s * db[1]).to(camera_weight.dtype) if ctx.needs_input_grad[4] else None
        d_scale = None
        if ctx.needs_input_grad[5]:
            d_scale = (lidar_weight.float() * db[0] + camera_weight.float() * db[1]).sum().to(scale.dtype)
        return (dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), d_lidar, d_cam, d_scale,
                None, None, None, None)


def _gather_box(g: _Group, x: Tensor) -> Tensor:
    """The box keys of x [B, h, K, d] as [h, Kb, d] float: one copy into a key-major
    [Kb, h, d] buffer, then a view (batched matmuls take the row stride h * d)."""
    box = g.box(x)
    return box.reshape(-1, *box.shape[2:]).float().transpose(0, 1)


def _add_to_box(g: _Group, grad: Tensor, update: Tensor):
    """grad[box keys] += update ([h, Kb, d]), in place through the box view."""
    box = g.box(grad)
    box += update.transpose(0, 1).view(box.shape)


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
