"""The compact description of AQR's local-window attention bias.

For every query the bias is `scale * lidar_weight` on the BEV keys inside a square window
around the query's BEV cell, `scale * camera_weight` on the camera keys inside a square
window around its pixel in the one view that sees it, and 0 elsewhere. Stored that way it
costs O(B * Q) numbers; the dense [B, Q, K] tensor (387 MB at batch 2, 900 queries and
56,400 keys) is only built by `to_dense()`, for debugging and tests.

Keys are addressed by grid position in the decoder memory's key order (`KeyGrid`). Windows
clip at the borders and never wrap across rows or views; a query with view -1 (seen by no
camera) has no camera window.
`local_bias_attention(q, k, v, bias)` computes the biased attention exactly without the
dense tensor (`bias_attention.py`).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .backends import window_route
from .bias_attention import local_bias_attention
from .key_grid import KeyGrid, WindowPart
from .window_size import WindowSize, split_window_size, window_radius


def window_offsets(window: int, rows: int, cols: int, device) -> Tuple[Tensor, Tensor]:
    """(d_row, d_col) of a window, cut to what can land on a rows x cols grid at all."""
    r_row = min(window_radius(window), rows - 1)
    r_col = min(window_radius(window), cols - 1)
    dr, dc = torch.meshgrid(torch.arange(-r_row, r_row + 1, device=device),
                            torch.arange(-r_col, r_col + 1, device=device), indexing='ij')
    return dr.reshape(-1), dc.reshape(-1)


class LocalWindowBias:
    """See the module docstring.

    Args:
        bev_shape: (H, W) of the BEV grid, or None when the memory has no BEV keys.
        cam_shape: (V, h, w) of the camera feature maps, or None without camera keys.
        bev_center: LongTensor [B, Q, 2], (row, col) of each query's BEV cell.
        cam_center: LongTensor [B, Q, 3], (view, row, col); view -1 = seen by no camera;
            None = no query has a camera window.
        lidar_weight, camera_weight: float [B, Q] (differentiable).
        window_size: odd int, or (bev_window, cam_window).
        scale: float or 0-dim tensor (differentiable when learnable).
        chunk_elements: memory budget (elements) of one block of the correction route's
            window pass, of its plain-tensor fallback and of its directly recomputed rows.
            2^19 (2 MB blocks) keeps the benchmark's peak within 1.25x of unbiased SDPA.
    """

    def __init__(self, bev_shape: Optional[Sequence[int]], cam_shape: Optional[Sequence[int]],
                 bev_center: Optional[Tensor], cam_center: Optional[Tensor], lidar_weight: Tensor,
                 camera_weight: Tensor, window_size: WindowSize, scale: Union[float, Tensor] = 1.0,
                 chunk_elements: int = 1 << 19):
        self.layout = KeyGrid.of(bev_shape, cam_shape)
        self.bev_window, self.cam_window = split_window_size(window_size)
        b, q = lidar_weight.shape
        if camera_weight.shape != (b, q):
            raise ValueError(f'camera_weight {tuple(camera_weight.shape)} != lidar_weight {(b, q)}')
        if self.bev_shape is not None and (bev_center is None or bev_center.shape != (b, q, 2)):
            raise ValueError(f'bev_center must be [B, Q, 2] = {(b, q, 2)}')
        if self.cam_shape is not None and cam_center is not None:   # None: no camera windows
            if cam_center.shape != (b, q, 3):
                raise ValueError(f'cam_center must be [B, Q, 3] = {(b, q, 3)}')
            views = cam_center[..., 0]
            if ((views < -1) | (views >= self.cam_shape[0])).any():
                raise ValueError(f'cam_center views must be in [-1, {self.cam_shape[0] - 1}]')
        self.bev_center, self.cam_center = bev_center, cam_center
        self.lidar_weight, self.camera_weight = lidar_weight, camera_weight
        self.scale = scale if isinstance(scale, Tensor) else lidar_weight.new_tensor(float(scale))
        self.chunk_elements = chunk_elements
        self._routes = {}
        self._window_keys = None

    @classmethod
    def from_layout(cls, layout, *args, **kwargs) -> 'LocalWindowBias':
        """The bias on the keys of `layout` (anything with `bev_shape` and `cam_shape`, such
        as the decoder memory's `KeyLayout`; the other arguments as in the constructor)."""
        return cls(layout.bev_shape, layout.cam_shape, *args, **kwargs)

    @property
    def bev_shape(self):
        return self.layout.bev_shape

    @property
    def cam_shape(self):
        return self.layout.cam_shape

    @property
    def num_bev_keys(self) -> int:
        return self.layout.num_bev_keys

    @property
    def num_keys(self) -> int:
        return self.layout.num_keys

    def parts(self) -> List[WindowPart]:
        """The windows as grid parts (`KeyGrid.window_parts`)."""
        return self.layout.window_parts(self.bev_center, self.cam_center, self.bev_window, self.cam_window)

    def windows(self, backend: str, heads: int, head_dim: int):
        """The route object of `backend` ('cpu_kernel' or 'torch', `backends.window_route`)
        for this bias's windows, built once and shared by every decoder layer that applies
        the bias (it depends on the centres only, fixed at construction)."""
        key = (backend, heads, head_dim)
        if key not in self._routes:
            self._routes[key] = window_route(backend, self.parts(), heads, head_dim, self.chunk_elements)
        return self._routes[key]

    def window_keys(self) -> Tuple[Tensor, Tensor, int]:
        """Key index [B, Q, n] of every window slot, its validity [B, Q, n] and how many of
        the n slots are BEV slots (they come first). Invalid slots point at key 0."""
        if self._window_keys is not None:
            return self._window_keys
        device = self.lidar_weight.device
        idx, valid = [], []
        n_bev = 0
        if self.bev_shape is not None:
            h, w = self.bev_shape
            dr, dc = window_offsets(self.bev_window, h, w, device)
            rows = self.bev_center[..., :1].long() + dr
            cols = self.bev_center[..., 1:2].long() + dc
            ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
            idx.append(torch.where(ok, self.layout.bev_key(rows, cols), 0))
            valid.append(ok)
            n_bev = dr.numel()
        if self.cam_shape is not None and self.cam_center is not None:
            v, h, w = self.cam_shape
            dr, dc = window_offsets(self.cam_window, h, w, device)
            view = self.cam_center[..., :1].long()
            rows = self.cam_center[..., 1:2].long() + dr
            cols = self.cam_center[..., 2:3].long() + dc
            ok = (view >= 0) & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
            idx.append(torch.where(ok, self.layout.cam_key(view, rows, cols), 0))
            valid.append(ok)
        self._window_keys = torch.cat(idx, -1), torch.cat(valid, -1), n_bev
        return self._window_keys

    def _values(self, lidar_weight: Tensor, camera_weight: Tensor, scale: Tensor, n_bev: int, n: int) -> Tensor:
        lw = lidar_weight[..., None].expand(*lidar_weight.shape, n_bev)
        cw = camera_weight[..., None].expand(*camera_weight.shape, n - n_bev)
        return scale * torch.cat([lw, cw], -1)

    def window_values(self, n_bev: int, n: int) -> Tensor:
        """Bias value of each window slot [B, Q, n] (before validity)."""
        return self._values(self.lidar_weight, self.camera_weight, self.scale, n_bev, n)

    def dense_rows(self, sample: int, rows: Tensor, lidar_weight: Optional[Tensor] = None,
                   camera_weight: Optional[Tensor] = None, scale: Optional[Tensor] = None) -> Tensor:
        """The dense bias [n, K] of queries `rows` of one sample (differentiable in the
        given weights and scale, by default the bias's own)."""
        lidar_weight = self.lidar_weight if lidar_weight is None else lidar_weight
        camera_weight = self.camera_weight if camera_weight is None else camera_weight
        scale = self.scale if scale is None else scale
        idx, valid, n_bev = self.window_keys()
        idx, valid = idx[sample].index_select(0, rows), valid[sample].index_select(0, rows)
        values = self._values(lidar_weight[sample].index_select(0, rows), camera_weight[sample].index_select(0, rows),
                              scale, n_bev, idx.shape[-1]) * valid
        return values.new_zeros(rows.numel(), self.num_keys).scatter_add(-1, idx, values)

    def to_dense(self) -> Tensor:
        """The dense [B, Q, K] bias. Debugging and tests only: it is what we avoid."""
        idx, valid, n_bev = self.window_keys()
        values = self.window_values(n_bev, idx.shape[-1]) * valid
        dense = values.new_zeros(*idx.shape[:2], self.num_keys)
        return dense.scatter_add(-1, idx, values)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """The `BiasedMultiheadAttention` hook: exact biased attention, never dense;
        key_padding_mask bool [B, K] (True = padding) or None."""
        return local_bias_attention(q, k, v, self, key_padding_mask)
