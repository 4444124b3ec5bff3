"""The pure-PyTorch route of AQR's window terms: queries grouped by tile, one box each.

Both `local_bias_attention` (the bias in every decoder cross-attention) and
`local_window_attention` (the AQR's LAM-restricted layer) need sums over each query's
window keys (`KeyGrid.window_parts`). This is the reference route of `backends.py`
(the compiled CPU kernel and the Triton kernel compute the same numbers).

With tensor ops, computing a window term per query (gather its window keys, reduce
elementwise) is slow and its index tensors are large. Instead queries are grouped by the
grid tile their window centre falls in; a group reads the bounding box of its members'
windows once as a strided view of the key tensor (no index tensors), scores it with one
batched matmul and zeroes (or masks) the entries outside each member's own window.
Nearby queries share most of their window keys, so the box is little larger than the
union of the windows, and a matmul over a box beats a broadcast multiply + sum over the
same numbers. Everything is computed in the dtype of the scaled queries `qs`.
`GroupedWindows` is the route object `backends.window_route` hands to both attentions.

Masks: the additive key-padding mask [B, 1, 1, K] (0 or -inf per key; None without
padding), as `padding.additive_key_padding` builds it.
"""
from typing import List, NamedTuple, Optional

import torch
from torch import Tensor

from .key_grid import WindowPart

#: cost model of one group, forward + backward (CPU, from profiles of the attention
#: benchmark and the synthetic model): ~1 ms of fixed cost (~70 small ops of Python and
#: dispatch, box copies), plus the box's scores and products per member and box key.
GROUP_OVERHEAD_S = 1e-3
QUERY_BOX_KEY_S = 80e-9


def tile_size(part: 'WindowPart', queries: int) -> int:
    """Side (cells) of the tiles a part's queries are grouped by, minimising the cost
    model per grid cell: smaller tiles give tighter boxes (less gathered and multiplied),
    larger ones fewer groups. Tiles never cross a camera view, nor boxes exceed one.
    16 cells on the synthetic 64 x 64 BEV grid (window 15, ~450 queries per sample);
    25 / 23 / 21 on the full 180 x 180 grid (900 queries) at windows 5 / 15 / 25."""
    density = max(queries, 1) / (part.rows * part.cols)
    side = 2 * part.radius

    def cost(t):
        cells = min(t, part.block) * min(t, part.cols)
        box = min(t + side, part.block) * min(t + side, part.cols)
        return GROUP_OVERHEAD_S / cells + density * QUERY_BOX_KEY_S * box

    return min(range(1, max(part.block, part.cols) + 1), key=cost)


class WindowGroup(NamedTuple):
    """Queries of one sample sharing the bounding box rows r0:r1, cols c0:c1 of their
    windows on one part's grid (within one camera view)."""
    part: WindowPart
    sample: int
    queries: Tensor  # [Qg] query indices
    r0: int
    r1: int          # exclusive
    c0: int
    c1: int          # exclusive
    row_in: Tensor   # [Qg, box rows] float 1/0: the row is in the query's window
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

    def scores(self, qs: Tensor, kb: Tensor, mask: Optional[Tensor]) -> Tensor:
        """[h, Qg, Kb] scores of the members (rows of qs [B, h, Q, d], already scaled) on
        the box keys kb [h, Kb, d], plus the key-padding mask's box keys."""
        s = torch.matmul(qs[self.sample].index_select(1, self.queries), kb.transpose(1, 2))
        if mask is not None:
            s += key_padding_rows(mask, self.sample, self.keys()).to(s.dtype)
        return s

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


def _box_group(part: WindowPart, sample: int, queries: List[int], rows: List[int], cols: List[int],
               device) -> WindowGroup:
    """The group of `queries` (centres rows/cols, all in one view) with the bounding box
    of their windows, clipped to that view."""
    top = rows[0] // part.block * part.block
    r0, r1 = max(top, min(rows) - part.radius), min(top + part.block, max(rows) + part.radius + 1)
    c0, c1 = max(0, min(cols) - part.radius), min(part.cols, max(cols) + part.radius + 1)
    kr = torch.arange(r0, r1, device=device)
    kc = torch.arange(c0, c1, device=device)
    qr = torch.tensor(rows, device=device)[:, None]
    qc = torch.tensor(cols, device=device)[:, None]
    return WindowGroup(part, sample, torch.tensor(queries, device=device), r0, r1, c0, c1,
                       ((kr - qr).abs() <= part.radius).float(), ((kc - qc).abs() <= part.radius).float())


def group_queries(parts: List[WindowPart], heads: int, head_dim: int, budget: int) -> List[WindowGroup]:
    """Queries grouped by window-centre tile (`tile_size`, within one view); a group is
    halved until its scores (heads x members x box keys) and its gathered keys (box keys x
    heads x head_dim) fit in `budget` elements, or it is down to one query (then its
    window alone is the box). Within one part every query with a window is in exactly
    one group."""
    groups = []
    for part in parts:
        device = part.row.device
        for i, (rows, cols, has) in enumerate(zip(part.row.tolist(), part.col.tolist(), part.has.tolist())):
            tile = tile_size(part, sum(has))
            tiles = {}
            for qi, (r, c, ok) in enumerate(zip(rows, cols, has)):
                if ok:
                    key = (r // part.block, r % part.block // tile, c // tile)
                    tiles.setdefault(key, []).append(qi)
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


def key_padding_rows(mask: Tensor, sample: int, keys: Optional[Tensor] = None) -> Tensor:
    """The one selector of the additive key-padding mask [B, 1, 1, K]: sample `sample`'s
    [1, 1, K] (or its `keys`), broadcasting over heads and queries."""
    m = mask[sample]
    return m if keys is None else m.index_select(2, keys)


def gather_box(g: WindowGroup, x: Tensor, dtype: torch.dtype) -> Tensor:
    """The box keys of x [B, h, K, d] as [h, Kb, d] of `dtype`: one copy into a key-major
    [Kb, h, d] buffer, then a view (batched matmuls take the row stride h * d)."""
    box = g.box(x)
    return box.reshape(-1, *box.shape[2:]).to(dtype).transpose(0, 1)


def add_to_box(g: WindowGroup, grad: Tensor, update: Tensor):
    """grad[box keys] += update ([h, Kb, d]), in place through the box view."""
    box = g.box(grad)
    box += update.transpose(0, 1).view(box.shape)


def window_scores(qs: Tensor, kb: Tensor, mask: Optional[Tensor], g: WindowGroup) -> Tensor:
    """[h, Qg, Kb] scores of a group's queries on its box keys kb, -inf outside their windows."""
    return g.scores(qs, kb, mask).masked_fill_(g.inside() == 0, float('-inf'))


def group_window_backward(qs: Tensor, k: Tensor, v: Tensor, go: Tensor, row_term: Tensor, lse: Tensor,
                          mask: Optional[Tensor], groups: List[WindowGroup], weight: Tensor, dq: Tensor,
                          dk: Tensor, dv: Tensor) -> Tensor:
    """The grouped (pure-PyTorch) twin of the compiled kernel's `window_backward`: for
    P = exp(s - lse) on each query's window keys (lse finite) and w = weight[part, b, q],
        dS = P (go . v - row_term);  dq += w dS k;  dk += w dS qs;  dv += w P go
    in place (dk, dv through box views), and returns db [2, B, Q] = (w + 1) * the window's
    dS summed over heads and keys, per part."""
    db = torch.zeros_like(weight)
    for g in groups:
        i, qi = g.sample, g.queries
        kb = gather_box(g, k, qs.dtype)
        p = (window_scores(qs, kb, mask, g) - lse[i].index_select(1, qi)[..., None]).exp_()
        qg, gog = qs[i].index_select(1, qi), go[i].index_select(1, qi)        # [h, Qg, d]
        ds = torch.matmul(gog, gather_box(g, v, qs.dtype).transpose(1, 2))
        ds -= row_term[i].index_select(1, qi)[..., None]
        ds *= p
        w = weight[g.part.index, i, qi]                                          # [Qg]
        db[g.part.index, i].index_add_(0, qi, ds.sum((0, 2)) * (w + 1.0))
        ds *= w[:, None]
        p *= w[:, None]
        dq[i].index_add_(1, qi, torch.matmul(ds, kb))
        add_to_box(g, dk, torch.matmul(ds.transpose(1, 2), qg))
        add_to_box(g, dv, torch.matmul(p.transpose(1, 2), gog))
    return db


def finite_lse(x: Tensor) -> Tensor:
    """-inf (no visible key) -> 0, so that exp(s - x) gives 0 rather than NaN."""
    return x.masked_fill(torch.isneginf(x), 0.0)


class GroupedWindows:
    """The pure-PyTorch route: the window terms of both attentions over grouped boxes (the
    same interface as the compiled kernel's `window_attention_cpu.KernelWindows`)."""

    def __init__(self, parts: List[WindowPart], heads: int, head_dim: int, budget: int):
        self.groups = group_queries(parts, heads, head_dim, budget)

    def corrections(self, qs, k, v, mask, weight, lse0):
        """(sum_w w p0 [B, h, Q], sum_w w p0 v [B, h, Q, d]) over the window keys, with
        p0 = exp(s - lse0) and w = weight[part, b, q] (the biased attention's correction)."""
        b, h, nq, d = qs.shape
        s_sum = lse0.new_zeros(b, h, nq)
        corr = lse0.new_zeros(b, h, nq, d)
        for g in self.groups:
            i, qi = g.sample, g.queries
            s = g.scores(qs, gather_box(g, k, qs.dtype), mask)                 # [h, Qg, Kb]
            s -= lse0[i].index_select(1, qi)[..., None]
            c = s.exp_().mul_(g.inside().to(s.dtype) * weight[g.part.index, i, qi, None])
            s_sum[i].index_add_(1, qi, c.sum(-1))
            corr[i].index_add_(1, qi, torch.matmul(c, gather_box(g, v, qs.dtype)))
        return s_sum, corr

    def softmax(self, qs, k, v, mask):
        """(out [B, h, Q, d], lse [B, h, Q]) of the softmax over each query's window keys:
        per modality the window softmax of each group, merged by log-sum-exp."""
        b, h, nq, d = qs.shape
        outs = qs.new_zeros(2, b, h, nq, d)          # per modality: normalised output, lse
        lses = qs.new_full((2, b, h, nq), float('-inf'))
        for g in self.groups:
            i, qi, p = g.sample, g.queries, g.part.index
            s = window_scores(qs, gather_box(g, k, qs.dtype), mask, g)
            lse = torch.logsumexp(s, -1)                                       # [h, Qg]
            probs = (s - finite_lse(lse)[..., None]).exp_()
            lses[p, i].index_copy_(1, qi, lse)
            outs[p, i].index_copy_(1, qi, torch.matmul(probs, gather_box(g, v, qs.dtype)))
        lse = torch.logaddexp(lses[0], lses[1])
        return (torch.exp(lses - finite_lse(lse))[..., None] * outs).sum(0), lse

    def backward(self, qs, k, v, go, row_term, lse, mask, weight, dq, dk, dv) -> Tensor:
        """See `group_window_backward`."""
        return group_window_backward(qs, k, v, go, row_term, lse, mask, self.groups, weight, dq, dk, dv)
