"""The one projection helper: LiDAR points <-> image pixels through `lidar2img`.

Every module that projects 3D points into the images (CMT's camera-ray embedding, the
query embedding, AQR's camera windows, the fusion necks) goes through these functions,
so a calibration convention is fixed in exactly one place. AQR's
window centres (`bev_cells`, `first_view_cells`) are computed here too:

  * `lidar2img` is [B, V, 4, 4]: cam2img (padded to 4x4) @ lidar2cam, with every image
    augmentation (resize, crop, flip) already folded in as a 4x4 matrix on the left;
  * pixel coordinates are (u, v) = (column, row) in the padded input image;
  * a point is seen by a view when its depth exceeds `min_depth` and (u, v) falls inside
    that view's image (before padding).
"""
from typing import Optional, Sequence, Tuple

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


def inside_image(uv: Tensor, img_shapes: Sequence[Tuple[int, int]]) -> Tensor:
    """[B, V, N] bool: (u, v) inside each sample's (unpadded) image of (height, width)."""
    hw = torch.as_tensor([list(s[:2]) for s in img_shapes], dtype=uv.dtype, device=uv.device)
    h, w = hw[:, 0].view(-1, 1, 1), hw[:, 1].view(-1, 1, 1)
    return (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)


def visible_mask(uv: Tensor, depth: Tensor, img_shapes: Sequence[Tuple[int, int]],
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


def padded_input_shape(img_metas: Sequence[dict]) -> Tuple[int, int]:
    """(height, width) of the padded network input the image feature maps were computed
    from: the detector's `input_shape` (set in extract_feat), else the `pad_shape` meta."""
    meta = img_metas[0]
    shape = meta.get('input_shape', meta.get('pad_shape'))
    if shape is None:
        raise KeyError("img_metas carry neither 'input_shape' nor 'pad_shape': cannot map pixels to feature maps")
    return int(shape[0]), int(shape[1])


def stack_lidar2img(img_metas: Sequence[dict], device=None, dtype=torch.float32) -> Optional[Tensor]:
    """[B, V, 4, 4] from the per-sample `lidar2img` metas (None when absent)."""
    if not img_metas or 'lidar2img' not in img_metas[0]:
        return None
    return torch.stack([torch.as_tensor(m['lidar2img'], dtype=dtype) for m in img_metas]).to(device)


def require_lidar2img(img_metas: Sequence[dict], num_views: int, device=None, dtype=torch.float32) -> Tensor:
    """`stack_lidar2img`, for modules that cannot work without it: [B, V, 4, 4], else a
    ValueError naming the meta key and the number of views the image features have."""
    lidar2img = stack_lidar2img(img_metas, device=device, dtype=dtype)
    if lidar2img is None or lidar2img.shape[1] != num_views:
        raise ValueError(f"img_metas need 'lidar2img' for all {num_views} views of the image features")
    return lidar2img


def bev_cells(ref: Tensor, bev_shape: Sequence[int]) -> Tensor:
    """(row, col) [B, N, 2] of the BEV cells holding normalised points ref [B, N, >= 2].

    Rows are y and columns x, as in mmdet3d's scatter / sparse encoders and CMT's BEV
    embedding; points outside the range clip to the border cell.
    """
    h, w = int(bev_shape[0]), int(bev_shape[1])
    col = (ref[..., 0] * w).floor().long().clamp(0, w - 1)
    row = (ref[..., 1] * h).floor().long().clamp(0, h - 1)
    return torch.stack([row, col], -1)


def first_view_cells(points: Tensor, lidar2img: Tensor, img_shapes: Sequence[Tuple[int, int]],
                     pad_shape: Sequence[int], feat_shape: Sequence[int]) -> Tensor:
    """(view, row, col) [B, N, 3] of LiDAR points on the camera feature maps.

    The view is the first one (lowest index) that sees the point (in front of it and inside
    its unpadded image); row/col index the h x w feature map of the padded input image of
    `pad_shape` (height, width). A point no camera sees gets view -1 (and row = col = 0):
    no fallback to an arbitrary view.
    """
    uv, depth = project_points(points, lidar2img)
    seen = visible_mask(uv, depth, img_shapes)                                # [B, V, N]
    num_views = seen.shape[1]
    order = torch.arange(num_views, 0, -1, device=seen.device).view(1, -1, 1)
    view = (seen * order).argmax(1)                                           # first seeing view
    any_seen = seen.any(1)
    pix = torch.gather(uv, 1, view[:, None, :, None].expand(-1, 1, -1, 2))[:, 0]   # [B, N, 2]
    h, w = int(feat_shape[0]), int(feat_shape[1])
    col = (pix[..., 0] * w / pad_shape[1]).floor().long().clamp(0, w - 1)
    row = (pix[..., 1] * h / pad_shape[0]).floor().long().clamp(0, h - 1)
    cells = torch.stack([view, row, col], -1)
    return torch.where(any_seen[..., None], cells, cells.new_tensor([-1, 0, 0]))


def bev_cell_centres(bev_shape: Sequence[int], pc_range: Sequence[float], heights: Sequence[float],
                     device=None, dtype=torch.float32) -> Tensor:
    """LiDAR-frame centres [H * W * Z, 3] of the BEV cells at the given heights (metres),
    cell-major (row-major over (row, col), then the heights): the inverse of `bev_cells`
    (rows are y, columns x)."""
    h, w = int(bev_shape[0]), int(bev_shape[1])
    x0, y0, _, x1, y1, _ = [float(r) for r in pc_range[:6]]
    ys = y0 + (torch.arange(h, device=device, dtype=dtype) + 0.5) * (y1 - y0) / h
    xs = x0 + (torch.arange(w, device=device, dtype=dtype) + 0.5) * (x1 - x0) / w
    zs = torch.as_tensor(list(heights), device=device, dtype=dtype)
    y, x, z = torch.meshgrid(ys, xs, zs, indexing='ij')
    return torch.stack([x, y, z], -1).reshape(-1, 3)


def sample_image_features(img_feats: Tensor, uv: Tensor, pad_shape: Sequence[int]) -> Tensor:
    """Bilinear samples of each view's feature map at pixels of the padded input image.

    Args:
        img_feats: [B, V, C, h, w], the stride-s maps of the padded images.
        uv: [B, V, N, 2] pixel coordinates (u = column, v = row) in the padded image of
            `pad_shape` (height, width).
    Returns:
        [B, V, C, N] (channels first: grid_sample's own layout, no copy). Points in the outer half cell of a map take its border values (the
        image goes on there); points outside the image are to be masked by the caller
        (`visible_mask`).
    """
    b, v, c, h, w = img_feats.shape
    # align_corners=False: pixel u of a width-W image lies at 2u/W - 1 in grid units
    grid = torch.stack([uv[..., 0] / pad_shape[1], uv[..., 1] / pad_shape[0]], -1) * 2 - 1
    out = torch.nn.functional.grid_sample(img_feats.flatten(0, 1), grid.flatten(0, 1)[:, :, None].to(img_feats.dtype),
                                          mode='bilinear', padding_mode='border', align_corners=False)
    return out[..., 0].view(b, v, c, -1)


def camera_poses(lidar2img: Tensor) -> Tuple[Tensor, Tensor]:
    """Each view's optical centre [B, V, 3] and unit viewing direction [B, V, 3] in the
    LiDAR frame, read from lidar2img alone: for P = K [R | t] the centre solves
    P[:3, :3] c + P[:3, 3] = 0, and the optical axis is P's third row (K's third row is
    (0, 0, 1), and image augmentations only change the first two rows)."""
    m = lidar2img.double()
    centre = -torch.linalg.solve(m[..., :3, :3], m[..., :3, 3:])[..., 0]
    axis = torch.nn.functional.normalize(m[..., 2, :3], dim=-1)
    return centre.to(lidar2img.dtype), axis.to(lidar2img.dtype)
