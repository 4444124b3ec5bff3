"""AQR's windows on the decoder's keys: the key grids and a window as a part of one.

AQR's windows address the keys of CMT's decoder memory (Yan et al., ICCV 2023) by grid
position, in the memory's key order:

    keys [0, H*W)                      BEV cells, row-major
    keys [H*W, H*W + V*h*w)            camera cells, view-major, then row-major

The decoder defines that order (`KeyLayout` in plugin/models/layers/key_layout.py); this
torch-only package reads it from the layout's shapes through a `KeyGrid`, and a test keeps
the two equal. A window is described on a 2-D grid of keys as a `WindowPart`: the BEV grid
itself, and the camera maps stacked view over view into a (V*h) x w grid whose windows
never cross a view boundary.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .window_size import window_radius


class WindowPart(NamedTuple):
    """One modality's windows as square windows on a 2-D key grid."""
    offset: int      # index of the grid's first key
    rows: int        # grid rows (camera: V * h, views stacked)
    cols: int
    block: int       # rows per view: windows never cross a multiple of it (BEV: rows)
    radius: int      # window_radius(window side)
    row: Tensor      # [B, Q] long, window centre row on the grid
    col: Tensor      # [B, Q] long
    has: Tensor      # [B, Q] bool, the query has a window in this modality
    index: int       # 0: BEV (lidar_weight), 1: camera (camera_weight)


class KeyGrid(NamedTuple):
    """The BEV grid (H, W) and camera maps (V, h, w) behind a key sequence (None = absent)."""
    bev_shape: Optional[Tuple[int, int]]
    cam_shape: Optional[Tuple[int, int, int]]

    @classmethod
    def of(cls, bev_shape: Optional[Sequence[int]], cam_shape: Optional[Sequence[int]]) -> 'KeyGrid':
        """From the shapes of a key layout (any int sequences; at least one given)."""
        if bev_shape is None and cam_shape is None:
            raise ValueError('the keys need a BEV grid, camera maps or both')
        return cls(None if bev_shape is None else tuple(int(s) for s in bev_shape),
                   None if cam_shape is None else tuple(int(s) for s in cam_shape))

    @property
    def num_bev_keys(self) -> int:
        return 0 if self.bev_shape is None else self.bev_shape[0] * self.bev_shape[1]

    @property
    def num_keys(self) -> int:
        return self.num_bev_keys + (0 if self.cam_shape is None else int(torch.Size(self.cam_shape).numel()))

    def bev_key(self, row: Tensor, col: Tensor) -> Tensor:
        """Key index of BEV cell (row, col)."""
        return row * self.bev_shape[1] + col

    def cam_key(self, view: Tensor, row: Tensor, col: Tensor) -> Tensor:
        """Key index of camera cell (row, col) of `view`."""
        _, h, w = self.cam_shape
        return self.num_bev_keys + (view * h + row) * w + col

    def window_parts(self, bev_center: Optional[Tensor], cam_center: Optional[Tensor], bev_window: int,
                     cam_window: int) -> List[WindowPart]:
        """The BEV and camera windows as grid parts (a block without centres is skipped).

        bev_center [B, Q, 2] (row, col); cam_center [B, Q, 3] (view, row, col), view -1 =
        no camera window."""
        parts = []
        if self.bev_shape is not None and bev_center is not None:
            h, w = self.bev_shape
            c = bev_center.long()
            parts.append(WindowPart(0, h, w, h, window_radius(bev_window), c[..., 0], c[..., 1],
                                    torch.ones_like(c[..., 0], dtype=torch.bool), 0))
        if self.cam_shape is not None and cam_center is not None:
            nv, h, w = self.cam_shape
            c = cam_center.long()
            view = c[..., 0]
            parts.append(WindowPart(self.num_bev_keys, nv * h, w, h, window_radius(cam_window),
                                    view.clamp(min=0) * h + c[..., 1], c[..., 2], view >= 0, 1))
        return parts
