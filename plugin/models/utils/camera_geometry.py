"""The camera geometry of a batch, as tensors: the one place image metas become tensors.

mmdet3d hands the models per-sample dicts (`lidar2img` per view, `img_shape`, `pad_shape`).
`CameraGeometry.from_metas` stacks them once per batch (the detector does it and passes
the bundle to the fusion neck, the triplane neck, the head and AQR), so every module reads
the same tensors and a convention is fixed in one place:

  * `lidar2img` [B, V, 4, 4]: cam2img (padded to 4x4) @ lidar2cam, with every image
    augmentation (resize, crop, flip) already folded in on the left;
  * `img_shape` [B, 2]: (height, width) of each sample's images before padding; a pixel
    outside it shows padding, not the scene;
  * `input_shape`: (height, width) of the padded network input the image feature maps were
    computed from (the detector's image batch; else the `pad_shape` meta);
  * `mean_focal`: the batch's mean focal length in pixels, computed on the host from the
    metas, so that reading it as a number costs no device synchronisation.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .projection import camera_poses, focal_lengths, inside_image, visible_mask


def stack_lidar2img(img_metas: Sequence[dict], device=None, dtype=torch.float32) -> Optional[Tensor]:
    """[B, V, 4, 4] from the per-sample `lidar2img` metas (None when absent)."""
    if not img_metas or 'lidar2img' not in img_metas[0]:
        return None
    return torch.stack([torch.as_tensor(np.asarray(m['lidar2img']), dtype=dtype) for m in img_metas]).to(device)


def padded_input_shape(img_metas: Sequence[dict]) -> Tuple[int, int]:
    """(height, width) of the padded network input: the `input_shape` meta, else `pad_shape`."""
    meta = img_metas[0]
    shape = meta.get('input_shape', meta.get('pad_shape'))
    if shape is None:
        raise KeyError("img_metas carry neither 'input_shape' nor 'pad_shape': cannot map pixels to feature maps")
    return int(shape[0]), int(shape[1])


class CameraGeometry(NamedTuple):
    """See the module docstring."""
    lidar2img: Tensor                 # [B, V, 4, 4]
    img_shape: Tensor                 # [B, 2] (height, width), before padding
    input_shape: Tuple[int, int]      # (height, width) of the padded input
    mean_focal: Optional[float] = None   # pixels; None: read from lidar2img when asked

    @classmethod
    def from_metas(cls, img_metas: Sequence[dict], input_shape: Optional[Sequence[int]] = None,
                   num_views: Optional[int] = None, device=None,
                   dtype: torch.dtype = torch.float32) -> Optional['CameraGeometry']:
        """The bundle of a batch, or None when the metas carry no `lidar2img` (a LiDAR-only
        batch). `input_shape` (height, width) of the padded image batch, when known; with
        `num_views` a missing or short `lidar2img` is an error naming the meta key."""
        host = stack_lidar2img(img_metas, dtype=torch.float64)
        lidar2img = None if host is None else host.to(device=device, dtype=dtype)
        if num_views is not None and (lidar2img is None or lidar2img.shape[1] != num_views):
            raise ValueError(f"img_metas need 'lidar2img' for all {num_views} views of the image features")
        if lidar2img is None:
            return None
        shapes = [list(m['img_shape'][:2]) for m in img_metas]
        img_shape = torch.as_tensor(shapes, dtype=dtype, device=lidar2img.device)
        pad = tuple(int(s) for s in input_shape[:2]) if input_shape is not None else padded_input_shape(img_metas)
        return cls(lidar2img, img_shape, pad, float(focal_lengths(host).mean()))

    @staticmethod
    def required(geometry: Optional['CameraGeometry'], num_views: int, module: str) -> 'CameraGeometry':
        """`geometry`, checked to cover `num_views` views: what every module that reads
        image features takes. The detector builds it once per batch (`from_metas`); a
        module used on its own is given `CameraGeometry.from_metas(img_metas)`."""
        if geometry is None:
            raise ValueError(f'{module} reads image features and needs the batch\'s camera geometry: pass '
                             'geometry=CameraGeometry.from_metas(img_metas, ...)')
        if geometry.lidar2img.shape[1] != num_views:
            raise ValueError(f'the camera geometry has {geometry.lidar2img.shape[1]} views, the image features '
                             f'{num_views}')
        return geometry

    @property
    def num_views(self) -> int:
        return self.lidar2img.shape[1]

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> 'CameraGeometry':
        return CameraGeometry(self.lidar2img.to(device=device, dtype=dtype),
                              self.img_shape.to(device=device, dtype=dtype), self.input_shape, self.mean_focal)

    def focal(self) -> float:
        """The batch's mean focal length in pixels (`mean_focal`, else read from lidar2img)."""
        if self.mean_focal is not None:
            return self.mean_focal
        return float(focal_lengths(self.lidar2img).double().mean())

    def inside(self, uv: Tensor) -> Tensor:
        """[B, V, N] bool: pixels uv [B, V, N, 2] inside each sample's unpadded images."""
        return inside_image(uv, self.img_shape)

    def visible(self, uv: Tensor, depth: Tensor) -> Tensor:
        """[B, V, N] bool: in front of the camera and inside the unpadded image."""
        return visible_mask(uv, depth, self.img_shape)

    def poses(self) -> Tuple[Tensor, Tensor]:
        """Each view's optical centre and unit viewing direction [B, V, 3] (LiDAR frame)."""
        return camera_poses(self.lidar2img)
