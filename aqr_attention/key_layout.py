"""Where each key of the decoder's memory comes from: the one definition of the key order.

CMT (Yan et al., ICCV 2023) decodes its queries against one key sequence made of the
BEV feature map and the camera feature maps. AQR's windows address those keys by grid
position, so the order must be known exactly by the memory builder, the window bias, both
window attentions and their kernels. `KeyLayout` is that order, built once by
`CmtTransformer.memory` from the feature shapes and read by every consumer:

    keys [0, H*W)                      BEV cells, row-major
    keys [H*W, H*W + V*h*w)            camera cells, view-major, then row-major

Either block may be absent (LiDAR-only or camera-only models). A window is described on
a 2-D grid of keys as a `WindowPart`: the BEV grid itself, and the camera maps stacked
view over view into a (V*h) x w grid whose windows never cross a view boundary.
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


class KeyLayout(NamedTuple):
    """The BEV grid (H, W) and camera maps (V, h, w) behind a key sequence (None = absent)."""
    bev_shape: Optional[Tuple[int, int]]
    cam_shape: Optional[Tuple[int, int, int]]

    @classmethod
    def of(cls, bev_shape: Optional[Sequence[int]], cam_shape: Optional[Sequence[int]]) -> 'KeyLayout':
        """Checked constructor from any int sequences."""
        bev = None if bev_shape is None else tuple(int(s) for s in bev_shape)
        cam = None if cam_shape is None else tuple(int(s) for s in cam_shape)
        if bev is None and cam is None:
            raise ValueError('a key layout needs a BEV grid, camera maps or both')
        if bev is not None and (len(bev) != 2 or min(bev) <= 0):
            raise ValueError(f'bev_shape must be (H, W) > 0, got {bev_shape!r}')
        if cam is not None and (len(cam) != 3 or min(cam) <= 0):
            raise ValueError(f'cam_shape must be (views, h, w) > 0, got {cam_shape!r}')
        return cls(bev, cam)

    @classmethod
    def from_features(cls, bev: Optional[Tensor], img: Optional[Tensor]) -> 'KeyLayout':
        """From BEV features [B, C, H, W] and camera features [B, V, C, h, w] (either None)."""
        return cls.of(None if bev is None else bev.shape[-2:],
                      None if img is None else (img.shape[1], *img.shape[-2:]))

    @property
    def num_bev_keys(self) -> int:
        return 0 if self.bev_shape is None else self.bev_shape[0] * self.bev_shape[1]

    @property
    def cam_offset(self) -> int:
        """Index of the first camera key."""
        return self.num_bev_keys

    @property
    def num_cam_keys(self) -> int:
        return 0 if self.cam_shape is None else self.cam_shape[0] * self.cam_shape[1] * self.cam_shape[2]

    @property
    def num_keys(self) -> int:
        return self.num_bev_keys + self.num_cam_keys

    def flatten(self, bev: Optional[Tensor], img: Optional[Tensor]) -> Tensor:
        """[B, K, C] keys from BEV features [B, C, H, W] and camera features [B, V, C, h, w]."""
        if KeyLayout.from_features(bev, img) != self:
            raise ValueError(f'features of shapes {None if bev is None else tuple(bev.shape)} / '
                             f'{None if img is None else tuple(img.shape)} do not match the layout {self}')
        parts = []
        if bev is not None:
            parts.append(bev.flatten(2).transpose(1, 2))
        if img is not None:
            b, v, c, h, w = img.shape
            parts.append(img.permute(0, 1, 3, 4, 2).reshape(b, v * h * w, c))
        return torch.cat(parts, 1)

    @staticmethod
    def flatten_views(x: Tensor) -> Tensor:
        """[B, V, h*w, ...] per-view quantities (cells row-major, as `grids.cell_centres`) -> [B, V*h*w, ...]
        in the camera keys' order."""
        return x.flatten(1, 2)

    def concat(self, bev: Optional[Tensor], cam: Optional[Tensor]) -> Tensor:
        """Joins per-key tensors already flattened per block ([B, H*W, ...], [B, V*h*w, ...])."""
        parts = [p for p in (bev, cam) if p is not None]
        out = torch.cat(parts, 1)
        if out.shape[1] != self.num_keys:
            raise ValueError(f'{out.shape[1]} keys given, the layout {self} has {self.num_keys}')
        return out

    def key_padding_mask(self, cam_padding: Optional[Tensor]) -> Optional[Tensor]:
        """[B, K] bool (True = padding) from the camera keys' padding [B, V*h*w]; BEV keys
        are never padding. None stays None."""
        if cam_padding is None:
            return None
        bev = cam_padding.new_zeros(cam_padding.shape[0], self.num_bev_keys)
        return self.concat(bev, cam_padding)

    def bev_key(self, row: Tensor, col: Tensor) -> Tensor:
        """Key index of BEV cell (row, col)."""
        return row * self.bev_shape[1] + col

    def cam_key(self, view: Tensor, row: Tensor, col: Tensor) -> Tensor:
        """Key index of camera cell (row, col) of `view`."""
        _, h, w = self.cam_shape
        return self.cam_offset + (view * h + row) * w + col

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
            parts.append(WindowPart(self.cam_offset, nv * h, w, h, window_radius(cam_window),
                                    view.clamp(min=0) * h + c[..., 1], c[..., 2], view >= 0, 1))
        return parts
