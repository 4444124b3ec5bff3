"""Window geometry shared by AQR's two local attentions (issue #4, DESIGN.md "AQR").

Both `local_bias_attention` (the bias in every decoder cross-attention) and
`local_window_attention` (the AQR's LAM-restricted layer) work on the same picture: every
query owns one square window on the BEV key grid and one on the camera key grid (the V
camera maps stacked view over view into a (V*h) x w grid, windows never crossing a view).

Computing a window term per query (gather its window keys, reduce elementwise) is slow on
CPU and its index tensors are large. Instead queries are grouped by the grid tile their
window centre falls in (tiles never cross a camera view); a group reads one box of keys
that holds all its members' windows, scores it with a matmul and zeroes (or masks) the
entries outside each member's own window. Nearby queries share most of their window keys,
so the box is little larger than the union of the windows, and a matmul over a box beats
a broadcast multiply + sum over the same numbers.

All boxes of a part have the same size (tile + window - 1, shifted to lie inside the grid
and the view), so groups are stacked into `GroupBatch`es and every op runs once per batch
of groups, not once per group: at the synthetic size, with many small groups, the fixed
cost per op dominates otherwise. A batch's buffers (scores, gathered keys) stay within a
budget of elements.

Key order (shared with `CmtTransformer.memory`): the H*W BEV keys first, row-major, then
the V*h*w camera keys, view-major then row-major.
"""
import functools
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

#: cost model of one group, forward + backward, on CPU: a fixed cost (the box's gather and
#: scatter, the group's share of the per-batch ops) and a cost per member and box key.
#: Checked by sweeping the tile at the synthetic size (64 x 64 BEV, window 15, ~450
#: queries per sample, interleaved runs): 11-16 cells are best (1.56-1.61x unbiased SDPA
#: per call), 6 cells 2.2x, 24 cells 1.8x; the model picks 16.
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


class WindowPart(NamedTuple):
    """One modality's windows as square windows on a 2-D key grid."""
    offset: int      # index of the grid's first key
    rows: int        # grid rows (camera: V * h, views stacked)
    cols: int
    block: int       # rows per view: windows never cross a multiple of it (BEV: rows)
    radius: int      # window // 2
    row: Tensor      # [B, Q] long, window centre row on the grid
    col: Tensor      # [B, Q] long
    has: Tensor      # [B, Q] bool, the query has a window in this modality
    index: int       # 0: BEV (lidar_weight), 1: camera (camera_weight)


def window_parts(bev_shape: Optional[Sequence[int]], cam_shape: Optional[Sequence[int]],
                 bev_center: Optional[Tensor], cam_center: Optional[Tensor], bev_window: int,
                 cam_window: int) -> List[WindowPart]:
    """The BEV and camera parts (either may be absent: shape None).

    bev_center [B, Q, 2] (row, col); cam_center [B, Q, 3] (view, row, col), view -1 = no
    camera window."""
    parts = []
    num_bev = 0
    if bev_shape is not None:
        h, w = bev_shape
        num_bev = h * w
        c = bev_center.long()
        parts.append(WindowPart(0, h, w, h, bev_window // 2, c[..., 0], c[..., 1],
                                torch.ones_like(c[..., 0], dtype=torch.bool), 0))
    if cam_shape is not None:
        nv, h, w = cam_shape
        c = cam_center.long()
        view = c[..., 0]
        parts.append(WindowPart(num_bev, nv * h, w, h, cam_window // 2,
                                view.clamp(min=0) * h + c[..., 1], c[..., 2], view >= 0, 1))
    return parts


class GroupBatch(NamedTuple):
    """G groups of one part, stacked: each has up to Qm member queries (padded) and a box
    of Kb = BR x BC keys. Flat indices address [B * Q (+1), h, ...] / [B * K, h, ...]
    buffers (`flat_rows`); padded member slots point at the extra row B * Q, whose values
    are thrown away. Batched tensors are [G, h, members, box keys]."""
    part: WindowPart
    samples: Tensor   # [G] long
    queries: Tensor   # [G, Qm] long, query index in its sample (padding: 0)
    flat_q: Tensor    # [G, Qm] long, sample * Q + query (padding: B * Q)
    keys: Tensor      # [G, Kb] long, key index in its sample (box, row-major)
    flat_k: Tensor    # [G, Kb] long, sample * K + key
    row_in: Tensor    # [G, Qm, BR] float 1/0: box row in the member's window (0 for padding)
    col_in: Tensor    # [G, Qm, BC] float 1/0

    def inside(self) -> Tensor:
        """[G, Qm, Kb] float 1/0: the box key is in that member's window. Built when used,
        from its separable row and column parts (saving it would cost Q x box keys)."""
        return (self.row_in[..., :, None] * self.col_in[..., None, :]).flatten(2)

    def scores(self, qg: Tensor, kb: Tensor, mask: Optional[Tensor]) -> Tensor:
        """[G, h, Qm, Kb] scores of the members qg [G, h, Qm, d] (already scaled) on their
        box keys kb [G, h, Kb, d], plus the additive mask."""
        s = torch.matmul(qg, kb.transpose(-1, -2))
        m = self.mask(mask)
        if m is not None:
            s += m
        return s

    def mask(self, mask: Optional[Tensor]) -> Optional[Tensor]:
        """The additive mask [B or 1, h or 1, Q or 1, K] on the batch: [G, h or 1, Qm, Kb]."""
        if mask is None:
            return None
        s = self.samples if mask.shape[0] > 1 else torch.zeros_like(self.samples)
        q = self.queries if mask.shape[2] > 1 else torch.zeros_like(self.queries)
        m = mask.permute(0, 2, 3, 1)[s[:, None, None], q[:, :, None], self.keys[:, None, :]]
        return m.permute(0, 3, 1, 2).float()


def group_batches(parts: List[WindowPart], num_keys: int, heads: int, head_dim: int,
                  budget: int) -> List[GroupBatch]:
    """Queries grouped by window-centre tile (`tile_size`, within one view), a tile split
    into groups of at most `budget // (heads * box keys)` members, and the groups stacked
    into batches whose scores (groups x heads x members x box keys) and gathered keys
    (groups x box keys x heads x head_dim) fit in `budget` elements (a single group may
    exceed it only when one window alone does: the tile shrinks to fit). Within one part
    every query with a window is in exactly one group."""
    batches = []
    for part in parts:
        b, nq = part.row.shape
        device = part.row.device
        side = 2 * part.radius
        tile = tile_size(part, int(part.has.sum()) // max(b, 1))
        # smaller tiles when one group's box would not fit the budget
        while tile > 1 and heads * head_dim * min(tile + side, part.block) * min(tile + side, part.cols) > budget:
            tile -= 1
        box_r, box_c = min(tile + side, part.block), min(tile + side, part.cols)
        box_keys = box_r * box_c
        cap = max(1, budget // (heads * box_keys))
        groups: List[Tuple[int, int, int, List[int]]] = []       # (sample, r0, c0, members)
        for i, (rows, cols, has) in enumerate(zip(part.row.tolist(), part.col.tolist(), part.has.tolist())):
            tiles = {}
            for qi, (r, c, ok) in enumerate(zip(rows, cols, has)):
                if ok:
                    tiles.setdefault((r // part.block, r % part.block // tile, c // tile), []).append(qi)
            for (view, tr, tc), members in tiles.items():
                # the fixed-size box holding the tile's windows, shifted into the view
                top = view * part.block
                r0 = min(max(top + tr * tile - part.radius, top), top + part.block - box_r)
                c0 = min(max(tc * tile - part.radius, 0), part.cols - box_c)
                for start in range(0, len(members), cap):
                    groups.append((i, r0, c0, members[start:start + cap]))
        groups.sort(key=lambda g: -len(g[3]))
        while groups:
            qm = len(groups[0][3])
            per_group = heads * max(qm, head_dim) * box_keys
            n = max(1, min(len(groups), budget // per_group))
            batches.append(_stack(part, groups[:n], qm, box_r, box_c, nq, num_keys, device))
            groups = groups[n:]
    return batches


def _stack(part: WindowPart, groups, qm: int, box_r: int, box_c: int, nq: int, num_keys: int,
           device) -> GroupBatch:
    g = len(groups)
    samples = torch.tensor([s for s, _, _, _ in groups], device=device)
    origin = torch.tensor([[r0, c0] for _, r0, c0, _ in groups], device=device)
    queries = torch.zeros(g, qm, dtype=torch.long)
    filled = torch.zeros(g, qm, dtype=torch.bool)
    for j, (_, _, _, members) in enumerate(groups):
        queries[j, :len(members)] = torch.tensor(members)
        filled[j, :len(members)] = True
    queries, filled = queries.to(device), filled.to(device)
    batch = part.row.shape[0]
    flat_q = torch.where(filled, samples[:, None] * nq + queries, batch * nq)
    box_rows = origin[:, :1] + torch.arange(box_r, device=device)              # [G, BR]
    box_cols = origin[:, 1:] + torch.arange(box_c, device=device)              # [G, BC]
    keys = part.offset + (box_rows[:, :, None] * part.cols + box_cols[:, None, :]).flatten(1)
    q_row = part.row[samples[:, None], queries]                                # [G, Qm]
    q_col = part.col[samples[:, None], queries]
    row_in = ((box_rows[:, None, :] - q_row[..., None]).abs() <= part.radius) & filled[..., None]
    col_in = (box_cols[:, None, :] - q_col[..., None]).abs() <= part.radius
    return GroupBatch(part, samples, queries, flat_q, keys, samples[:, None] * num_keys + keys,
                      row_in.float(), col_in.float())


def flat_rows(x: Tensor, extra_row: Optional[float] = None) -> Tensor:
    """[B, h, N, *] (any strides) -> [B * N (+1), h, *] float32, row-major over (B, N); a
    copy only when x is not already stored N-major (head-split projections are) or not
    float32. With `extra_row` a row of that value is appended: the target of padded member
    slots (a new tensor, safe to modify in place)."""
    b, h, n = x.shape[:3]
    flat = x.float().transpose(1, 2).reshape(b * n, h, *x.shape[3:])
    if extra_row is not None:
        flat = torch.cat([flat, flat.new_full((1, *flat.shape[1:]), extra_row)])
    return flat


def autocast_off(fn):
    """Runs an autograd Function's forward / backward with autocast disabled: the window
    terms are accumulated in float32 buffers (index_add_ refuses the half-precision
    matmul results autocast would give, e.g. under mmengine's AmpOptimWrapper)."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        device = next(a.device.type for a in args if isinstance(a, Tensor))
        with torch.autocast(device, enabled=False):
            return fn(ctx, *args)
    return wrapper


def unflat_rows(flat: Tensor, b: int, n: int) -> Tensor:
    """Inverse of `flat_rows` (dropping an extra row): [B, h, N, *] view."""
    return flat[:b * n].view(b, n, *flat.shape[1:]).transpose(1, 2)


def gather(flat: Tensor, index: Tensor) -> Tensor:
    """Rows `index` [G, N] of flat [M, h, *] as [G, h, N, *] (a transposed view of one
    contiguous row gather; batched matmuls copy it into their layout once)."""
    return flat.index_select(0, index.flatten()).view(*index.shape, *flat.shape[1:]).transpose(1, 2)


def scatter_add(flat: Tensor, index: Tensor, values: Tensor):
    """flat[index] += values, with values [G, h, N, *] in `gather`'s layout, in place."""
    flat.index_add_(0, index.flatten(), values.transpose(1, 2).reshape(-1, *flat.shape[1:]))
