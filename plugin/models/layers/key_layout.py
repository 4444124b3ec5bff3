"""Where each key of the decoder's memory comes from: the one definition of the key order.

CMT (Yan et al., ICCV 2023) decodes its queries against one key sequence made of the
BEV feature map and the camera feature maps. `CmtTransformer.memory` builds it in the
order of a `KeyLayout`, built once from the feature shapes:

    keys [0, H*W)                      BEV cells, row-major
    keys [H*W, H*W + V*h*w)            camera cells, view-major, then row-major

Either block may be absent (LiDAR-only or camera-only models). Modules that address keys
by grid position (AQR's windows, `aqr_attention.KeyGrid`) read the same order from the
layout's shapes.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor


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
    def num_keys(self) -> int:
        cams = 0 if self.cam_shape is None else self.cam_shape[0] * self.cam_shape[1] * self.cam_shape[2]
        return self.num_bev_keys + cams

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
