"""The one projection helper: LiDAR points <-> image pixels through `lidar2img`.

Every module that projects 3D points into the images (CMT's camera-ray embedding, the
query embedding, AQR's camera windows, the fusion necks) goes through these functions,
so a calibration convention is fixed in exactly one place (the batch's tensors come from
`camera_geometry.CameraGeometry`; grids of cells are in `grids.py`, image sampling in
`image_sampling.py`):

  * `lidar2img` is [B, V, 4, 4]: cam2img (padded to 4x4) @ lidar2cam, with every image
    augmentation (resize, crop, flip) already folded in as a 4x4 matrix on the left;
  * pixel coordinates are (u, v) = (column, row) in the padded input image;
  * a point is seen by a view when its depth exceeds `min_depth` and (u, v) falls inside
    that view's image (before padding).
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor


def project_points(points: Tensor, lidar2img: Tensor, min_depth: float = 1e-2
                   ) -> Tuple[Tensor, Tensor]:
    """Projects LiDAR-frame points into every view.

    Args:
        points: [B, N, 3] LiDAR-frame points.
        lidar2img: [B, V, 4, 4].
    Returns:
        uv [B, V, N, 2] pixel coordinates (undefined where depth <= min_depth) and
        depth [B, V, N].
    """
    hom = torch.cat([points, torch.ones_like(points[..., :1])], -1)           # [B, N, 4]
    cam = torch.einsum('bvij,bnj->bvni', lidar2img.to(points.dtype), hom)     # [B, V, N, 4]
    depth = cam[..., 2]
    uv = cam[..., :2] / depth.clamp(min=min_depth)[..., None]
    return uv, depth


def inside_image(uv: Tensor, img_shapes: Union[Tensor, Sequence[Tuple[int, int]]]) -> Tensor:
    """[B, V, N] bool: (u, v) inside each sample's (unpadded) image of (height, width)
    (img_shapes [B, 2], a tensor or per-sample pairs)."""
    if isinstance(img_shapes, Tensor):
        hw = img_shapes.to(device=uv.device, dtype=uv.dtype)
    else:
        hw = torch.as_tensor([list(s[:2]) for s in img_shapes], dtype=uv.dtype, device=uv.device)
    h, w = hw[:, 0].view(-1, 1, 1), hw[:, 1].view(-1, 1, 1)
    return (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)


def visible_mask(uv: Tensor, depth: Tensor, img_shapes: Union[Tensor, Sequence[Tuple[int, int]]],
                 min_depth: float = 1e-2) -> Tensor:
    """[B, V, N] bool: in front of the camera and inside the (unpadded) image.

    img_shapes: per sample (height, width) of the images (all views share it).
    """
    return (depth > min_depth) & inside_image(uv, img_shapes)


def lift_pixels(uv: Tensor, depths: Tensor, lidar2img: Tensor) -> Tensor:
    """Points at the given depths along the camera rays through pixels.

    Args:
        uv: [B, V, N, 2] pixel coordinates.
        depths: [D] depths (metres along the optical axis).
        lidar2img: [B, V, 4, 4].
    Returns:
        [B, V, N, D, 3] LiDAR-frame points.
    """
    shape = (*uv.shape[:-1], depths.numel(), 1)
    d = depths.to(uv.dtype).view(1, 1, 1, -1, 1).expand(shape)
    pix = torch.cat([uv[..., None, :] * d, d, torch.ones_like(d)], -1)     # (u d, v d, d, 1)
    img2lidar = torch.linalg.inv(lidar2img.double()).to(uv.dtype)             # [B, V, 4, 4]
    return torch.einsum('bvij,bvndj->bvndi', img2lidar, pix)[..., :3]


def normalize_points(points: Tensor, pc_range: Sequence[float]) -> Tensor:
    """Maps metres to [0, 1] over the point-cloud range (x_min, y_min, z_min, x_max, ...)."""
    lo = points.new_tensor(pc_range[:3])
    hi = points.new_tensor(pc_range[3:6])
    return (points - lo) / (hi - lo)


def denormalize_points(points: Tensor, pc_range: Sequence[float]) -> Tensor:
    lo = points.new_tensor(pc_range[:3])
    hi = points.new_tensor(pc_range[3:6])
    return points * (hi - lo) + lo


def pixel_rays(uv: Tensor, lidar2img: Tensor, centre: Optional[Tensor] = None) -> Tensor:
    """Unit directions [B, V, N, 3] (LiDAR frame) of the camera rays through pixels uv
    [B, V, N, 2]: from each view's optical centre (`camera_poses`, or `centre` [B, V, 3]
    when the caller has it) to the pixel's point at depth 1."""
    if centre is None:
        centre, _ = camera_poses(lidar2img)
    points = lift_pixels(uv, uv.new_ones(1), lidar2img)[..., 0, :]                  # [B, V, N, 3]
    return torch.nn.functional.normalize(points - centre[:, :, None], dim=-1)


def focal_lengths(lidar2img: Tensor) -> Tensor:
    """Focal length in pixels [B, V] of each view, read from lidar2img alone: for P = K R
    with square pixels and no skew, P P^T = K K^T, so f^2 = (P P^T)[0, 0] - (P P^T)[0, 2]^2
    (image resizes scale f with the image; crops and flips leave it)."""
    p = lidar2img[..., :3, :3].double()
    m = p @ p.transpose(-1, -2)
    return (m[..., 0, 0] - m[..., 0, 2] ** 2).clamp(min=0).sqrt().to(lidar2img.dtype)


def camera_poses(lidar2img: Tensor) -> Tuple[Tensor, Tensor]:
    """Each view's optical centre [B, V, 3] and unit viewing direction [B, V, 3] in the
    LiDAR frame, read from lidar2img alone: for P = K [R | t] the centre solves
    P[:3, :3] c + P[:3, 3] = 0, and the optical axis is P's third row (K's third row is
    (0, 0, 1), and image augmentations only change the first two rows)."""
    m = lidar2img.double()
    centre = -torch.linalg.solve(m[..., :3, :3], m[..., :3, 3:])[..., 0]
    axis = torch.nn.functional.normalize(m[..., 2, :3], dim=-1)
    return centre.to(lidar2img.dtype), axis.to(lidar2img.dtype)
