"""Dense supervision of the camera feature maps: where each 3D box centre appears in each
view, and how far away it is.

After StreamPETR's 2D focal head (Wang et al., "Exploring Object-Centric Temporal Modeling
for Efficient Multi-View 3D Object Detection", ICCV 2023) and Far3D's 2D branch (Jiang et
al., AAAI 2024): on every camera feature map, per class a heatmap of the projected 3D box
centres (CenterNet's Gaussian targets and focal loss, Zhou et al. 2019), the sub-cell
offset of each centre and the depth of the 3D centre (L1 on log depth). CMT's camera
features are otherwise trained only through the few matched queries' set-prediction
losses; this gives every feature cell a target from the first iteration, as the BEV
heatmap does for the LiDAR map (`BEVHeatmapAux`).

Targets come from the GT boxes through the batch's `CameraGeometry`: `lidar2img` already
holds every image augmentation (resize, crop, flip) and the BEV augmentations, so a centre
lands where the augmented image shows it. A centre behind a camera or outside a view's
(unpadded) image gives that view no target.

Resizing a view by s makes an object at depth d look like one at d / s: with
`depth_focal`, the depth branch predicts the depth the object would have in a view of
that focal length, and the head scales it by each view's focal length (read from its
lidar2img), so resize augmentation no longer contradicts the depth targets (the
camera-aware depth of monocular detectors, e.g. Wang et al., "FCOS3D", ICCVW 2021 and
Park et al., "Is Pseudo-Lidar needed for Monocular 3D Object Detection?" (DD3D), ICCV 2021).

With `ground_prior`, the depth branch also sees where each cell's camera ray meets the
ground: for a ray of unit direction r through the cell (LiDAR frame, z up) and the view's
optical axis a, a point at height h below the camera lies at depth h (r . a) / (-r_z) along
the axis, so log depth = log h + log((r . a) / -r_z). The second term, computed from the
view's lidar2img (every augmentation included), is added with a learned weight (0 at
initialisation); the branch learns the rest (the height, the object's own extent). This is
the ground-plane depth prior of Liu et al., "Ground-aware Monocular 3D Object Detection for
Autonomous Driving", RA-L 2021, as an additive term in log depth.
"""
import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule, bias_init_with_prob
from torch import Tensor, nn

from mmdet3d.models.utils import clip_sigmoid, draw_heatmap_gaussian, gaussian_radius
from mmdet3d.registry import MODELS
from mmdet3d.structures import LiDARInstance3DBoxes

from ..utils.camera_geometry import CameraGeometry
from ..utils.grids import view_peaks
from ..utils.projection import camera_poses, focal_lengths, pixel_rays, project_points, visible_mask


class CentreTargets(NamedTuple):
    heatmap: Tensor       # [B, V, K, h, w] Gaussian peaks (1 at each centre's cell)
    offset: Tensor        # [B, V, 2, h, w] centre - cell corner, in cells (x, y)
    depth: Tensor         # [B, V, h, w] metres along the optical axis
    mask: Tensor          # [B, V, h, w] bool: a centre lies in this cell
    region_depth: Tensor  # [B, V, h, w] the depth targets: `depth`, and near a centre its depth
    region_mask: Tensor   # [B, V, h, w] bool: the cells with a depth target


@MODELS.register_module()
class ImageCentreHead(BaseModule):
    """3x3 conv -> BN -> ReLU, then 1x1 convs to the class heatmaps, the offset and the log
    depth, on each view's feature map.

    Args:
        in_channels: channels of the camera feature maps.
        num_classes: heatmap channels (the detector's classes, in their order).
        feat_channels: channels of the shared 3x3 conv.
        min_radius / min_overlap: Gaussian radius in feature cells, from the projected
            box's 2D extent as in CenterNet (`gaussian_radius`), at least `min_radius`.
        min_depth: centres nearer than this (metres) give no target.
        depth_focal: focal length (input pixels) at which the depth branch predicts depth;
            each view's prediction is scaled by its focal length over this one. None: the
            branch predicts metric depth whatever the view's scale.
        depth_radius: the depth is also supervised at the cells within this many cells of
            a centre (Chebyshev distance; the nearest such centre's depth, a centre's own
            cell keeping its own), as FCOS3D regresses depth at every location near an
            object's centre rather than at one cell; 0: at the centre cells only.
        ground_prior: add the ground-plane term log((r . a) / -r_z) of each cell's ray
            (above) to the log depth, with a learned weight.
        loss_heatmap / loss_offset / loss_depth: loss configs.
    """

    def __init__(self, in_channels: int, num_classes: int, feat_channels: int = 64, min_radius: int = 1,
                 min_overlap: float = 0.1, min_depth: float = 0.5, depth_focal: Optional[float] = None,
                 depth_radius: int = 0, ground_prior: bool = False,
                 loss_heatmap: dict = dict(type='mmdet.GaussianFocalLoss', reduction='mean', loss_weight=1.0),
                 loss_offset: dict = dict(type='mmdet.L1Loss', loss_weight=1.0),
                 loss_depth: dict = dict(type='mmdet.L1Loss', loss_weight=1.0), init_cfg=None):
        super().__init__(init_cfg)
        self.num_classes, self.min_radius, self.min_overlap = num_classes, min_radius, min_overlap
        self.min_depth = min_depth
        if depth_focal is not None and not depth_focal > 0:
            raise ValueError(f'ImageCentreHead.depth_focal must be a positive focal length in pixels, got {depth_focal}')
        self.depth_focal = depth_focal
        if not (isinstance(depth_radius, int) and depth_radius >= 0):
            raise ValueError(f'ImageCentreHead.depth_radius must be an int >= 0 (cells), got {depth_radius!r}')
        self.depth_radius = depth_radius
        self.ground_weight = nn.Parameter(torch.zeros(())) if ground_prior else None
        self.shared = nn.Sequential(nn.Conv2d(in_channels, feat_channels, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(feat_channels), nn.ReLU(inplace=True))
        self.heatmap = nn.Conv2d(feat_channels, num_classes, 1)
        self.offset = nn.Conv2d(feat_channels, 2, 1)
        self.depth = nn.Conv2d(feat_channels, 1, 1)
        self.loss_heatmap = MODELS.build(loss_heatmap)
        self.loss_offset = MODELS.build(loss_offset)
        self.loss_depth = MODELS.build(loss_depth)

    def init_weights(self):
        super().init_weights()
        nn.init.constant_(self.heatmap.bias, bias_init_with_prob(0.1))
        nn.init.constant_(self.depth.bias, math.log(20.0))     # a typical depth: training starts sane

    def forward(self, img_feats: Tensor, geometry: Optional[CameraGeometry] = None) -> Dict[str, Tensor]:
        """img_feats [B, V, C, h, w] -> heatmap logits [B, V, K, h, w], offset [B, V, 2, h, w]
        (cells) and log depth [B, V, h, w] (log metres; with `depth_focal`, scaled by the
        focal lengths of `geometry`'s views)."""
        b, v = img_feats.shape[:2]
        x = self.shared(img_feats.flatten(0, 1))
        log_depth = self.depth(x)[:, 0].unflatten(0, (b, v))
        if (self.depth_focal is not None or self.ground_weight is not None) and geometry is None:
            raise ValueError('ImageCentreHead(depth_focal=... or ground_prior=True) needs the views\' lidar2img '
                             '(a CameraGeometry)')
        if self.ground_weight is not None:
            log_depth = log_depth + self.ground_weight * ground_term(geometry, log_depth.shape[-2:]).to(log_depth.dtype)
        if self.depth_focal is not None:
            scale = (focal_lengths(geometry.lidar2img.float()) / self.depth_focal).log()       # [B, V]
            log_depth = log_depth + scale[..., None, None].to(log_depth.dtype)
        return dict(heatmap=self.heatmap(x).unflatten(0, (b, v)), offset=self.offset(x).unflatten(0, (b, v)),
                    log_depth=log_depth)

    @torch.no_grad()
    def targets(self, gt_boxes: List[Tensor], gt_labels: List[Tensor], geometry: CameraGeometry,
                feat_shape: Sequence[int]) -> CentreTargets:
        """The targets of a batch on feature maps of `feat_shape` (h, w), computed from the
        padded input's stride (`geometry.input_shape` over the map)."""
        h, w = int(feat_shape[0]), int(feat_shape[1])
        bsz, nv = geometry.lidar2img.shape[:2]
        stride_y, stride_x = geometry.input_shape[0] / h, geometry.input_shape[1] / w
        device = geometry.lidar2img.device
        heat = torch.zeros(bsz, nv, self.num_classes, h, w, device=device)
        offset = torch.zeros(bsz, nv, 2, h, w, device=device)
        depth = torch.full((bsz, nv, h, w), float('inf'), device=device)
        for b, (boxes, labels) in enumerate(zip(gt_boxes, gt_labels)):
            if boxes.numel() == 0:
                continue
            boxes = LiDARInstance3DBoxes(boxes.to(device=device, dtype=torch.float32), box_dim=boxes.shape[-1])
            n = boxes.tensor.shape[0]
            points = torch.cat([boxes.gravity_center, boxes.corners.reshape(-1, 3)])       # [N + 8N, 3]
            uv, z = project_points(points[None].double(), geometry.lidar2img[b:b + 1].double())
            uv, z = uv[0], z[0]                                                               # [V, N + 8N, ...]
            seen = visible_mask(uv[None, :, :n], z[None, :, :n], geometry.img_shape[b:b + 1].double())[0]  # [V, N]
            for view, j in seen.nonzero().tolist():
                label = int(labels[j])
                if not 0 <= label < self.num_classes or float(z[view, j]) < self.min_depth:
                    continue
                cx, cy = float(uv[view, j, 0]) / stride_x, float(uv[view, j, 1]) / stride_y
                col, row = min(int(cx), w - 1), min(int(cy), h - 1)
                corners = uv[view, n + 8 * j:n + 8 * (j + 1)]
                front = z[view, n + 8 * j:n + 8 * (j + 1)] > self.min_depth
                if front.any():
                    ext = corners[front]
                    box_w = float(ext[:, 0].max() - ext[:, 0].min()) / stride_x
                    box_h = float(ext[:, 1].max() - ext[:, 1].min()) / stride_y
                else:
                    box_w = box_h = 0.0
                radius = gaussian_radius((torch.tensor(box_h), torch.tensor(box_w)), self.min_overlap)
                radius = max(self.min_radius, int(radius))
                draw_heatmap_gaussian(heat[b, view, label], torch.tensor([col, row]), radius)
                if float(z[view, j]) < float(depth[b, view, row, col]):      # the nearer centre owns the cell
                    depth[b, view, row, col] = float(z[view, j])
                    offset[b, view, 0, row, col] = cx - col
                    offset[b, view, 1, row, col] = cy - row
        mask = torch.isfinite(depth)
        region = depth
        if self.depth_radius > 0:   # the nearest centre's depth around each centre, min-pooled
            size = 2 * self.depth_radius + 1
            near = -nn.functional.max_pool2d(-depth.flatten(0, 1)[:, None], size, 1, self.depth_radius)
            region = torch.where(mask, depth, near[:, 0].unflatten(0, (bsz, nv)))
        region_mask = torch.isfinite(region)
        return CentreTargets(heat, offset, depth.masked_fill(~mask, 0.0), mask, region.masked_fill(~region_mask, 0.0),
                             region_mask)

    def loss(self, outs: Dict[str, Tensor], gt_boxes: List[Tensor], gt_labels: List[Tensor],
             geometry: CameraGeometry) -> Dict[str, Tensor]:
        """Gaussian focal loss of the heatmaps over every cell; L1 of the offset and of the
        log depth at the cells that hold a centre, or lie within `depth_radius` of one (zero
        when no view sees one). The targets
        are `outs['targets']` when the caller computed them, else computed here."""
        logits = outs['heatmap']
        t = outs.get('targets')
        if t is None:
            t = self.targets(gt_boxes, gt_labels, geometry, logits.shape[-2:])
        pred = clip_sigmoid(logits.float().clone())     # mmdet3d's clip_sigmoid works in place
        num_pos = t.heatmap.eq(1).float().sum().clamp(min=1)
        losses = dict(loss_img_heatmap=self.loss_heatmap(pred, t.heatmap, avg_factor=num_pos))
        mask = t.mask
        count = mask.sum().clamp(min=1).float()
        offset = outs['offset'].float().permute(0, 1, 3, 4, 2)[mask]                 # [P, 2]
        losses['loss_img_offset'] = self.loss_offset(offset, t.offset.permute(0, 1, 3, 4, 2)[mask],
                                                     avg_factor=count * 2)
        region = t.region_mask
        losses['loss_img_depth'] = self.loss_depth(outs['log_depth'].float()[region], t.region_depth[region].log(),
                                                   avg_factor=region.sum().clamp(min=1).float())
        return losses

    @torch.no_grad()
    def peaks(self, heatmap_logits: Tensor, k: int) -> Tuple[Tensor, Tensor, Tensor]:
        """The k highest local maxima (3x3) of each sample's heatmaps over all views and
        classes: scores [B, k], class [B, k] and (view, row, col) [B, k, 3]."""
        return view_peaks(heatmap_logits.sigmoid(), min(k, heatmap_logits[0].numel()))


# rays at most this far above the horizon's slope count as at it (a ray above the horizon
# never meets the ground: its term stays at the horizon's, about log 115)
_MIN_DESCENT = math.sin(math.radians(0.5))


def ground_term(geometry: CameraGeometry, feat_shape: Sequence[int]) -> Tensor:
    """log((r . a) / -r_z) [B, V, h, w] at the centre of every cell of the feature maps: r
    the unit ray through the cell (LiDAR frame, z up), a the view's optical axis; the log of
    the depth at which the ray has descended one metre."""
    h, w = int(feat_shape[0]), int(feat_shape[1])
    lidar2img = geometry.lidar2img.float()
    stride_y, stride_x = geometry.input_shape[0] / h, geometry.input_shape[1] / w
    rows, cols = torch.meshgrid(torch.arange(h, device=lidar2img.device), torch.arange(w, device=lidar2img.device),
                                indexing='ij')
    uv = torch.stack([(cols.flatten() + 0.5) * stride_x, (rows.flatten() + 0.5) * stride_y], -1).float()
    centre, axis = camera_poses(lidar2img)
    rays = pixel_rays(uv.expand(*lidar2img.shape[:2], -1, -1), lidar2img, centre)     # [B, V, h * w, 3]
    along = (rays * axis[:, :, None]).sum(-1)
    term = along.clamp(min=1e-3).log() - (-rays[..., 2]).clamp(min=_MIN_DESCENT).log()
    return term.unflatten(-1, (h, w))
