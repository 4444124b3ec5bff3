"""CameraPeakQueries: peaks of the camera-centre heatmaps lifted along their rays, on a
hand-computed pinhole rig (plain, flipped and cropped views)."""
import numpy as np
import pytest
import torch

import plugin  # noqa: F401
from plugin.models.dense_heads import ImageCentreHead
from plugin.models.query_generators import CameraPeakQueries, QueryInputs
from plugin.models.utils import CameraGeometry
from plugin.models.utils.projection import denormalize_points
from tests.helpers.pinhole_cameras import pinhole_camera

F, CX, CY, W, H = 500.0, 320.0, 180.0, 640, 360
STRIDE = 16
PC_RANGE = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
FLIP = np.array([[-1.0, 0, W, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
CROP = np.array([[0.5, 0, -40.0, 0], [0, 0.5, -20.0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
# two boxes (x, y, z bottom, l, w, h, yaw) in front of a camera looking along +x, classes 2 and 0
BOXES = torch.tensor([[20.0, 2.0, 0.6, 4.0, 2.0, 1.6, 0.3], [35.0, -6.0, -0.4, 0.8, 0.8, 1.8, 0.0]])
LABELS = torch.tensor([2, 0])


def _geometry(aug):
    l2c, k = pinhole_camera(0.0, t=(0.5, 0.1, 1.6), f=F, cx=CX, cy=CY)
    k4 = np.eye(4)
    k4[:3, :3] = k
    mat = k4 @ l2c if aug is None else aug @ k4 @ l2c
    return CameraGeometry(torch.tensor(mat[None, None], dtype=torch.float32), torch.tensor([[float(H), float(W)]]),
                          (H, W))


def _generator(num_query=2, **kwargs):
    torch.manual_seed(0)
    gen = CameraPeakQueries(num_query=num_query, in_channels=8, num_classes=3, embed_dims=16, pc_range=PC_RANGE,
                            **kwargs)
    gen.init_weights()
    return gen


def _centres_with_peaks_on_the_targets(geometry):
    """Centre-head outputs whose heatmap peaks exactly at the ground-truth centres' cells,
    with a wrong predicted depth (50 m) and offset (0) everywhere, plus the targets."""
    h, w = H // STRIDE + (H % STRIDE > 0), W // STRIDE
    head = ImageCentreHead(in_channels=8, num_classes=3)
    targets = head.targets([BOXES], [LABELS], geometry, (h, w))
    heatmap = torch.full((1, 1, 3, h, w), -9.0)
    heatmap[targets.heatmap == 1] = 5.0
    return dict(heatmap=heatmap, offset=torch.zeros(1, 1, 2, h, w),
                log_depth=torch.full((1, 1, h, w), float(np.log(50.0))), targets=targets), (h, w)


@pytest.mark.parametrize('aug', [None, FLIP, CROP], ids=['plain', 'flipped', 'cropped'])
def test_a_peak_lifted_with_its_gt_depth_is_the_gt_centre(aug):
    geometry = _geometry(aug)
    centre, (h, w) = _centres_with_peaks_on_the_targets(geometry)
    gen = _generator(use_gt_depth=True).train()
    feats = torch.randn(1, 1, 8, h, w)
    queries = gen(QueryInputs(1, img_feats=feats, img_centre=centre, geometry=geometry))
    points = denormalize_points(queries.ref[0].double(), PC_RANGE)
    from mmdet3d.structures import LiDARInstance3DBoxes
    truth = LiDARInstance3DBoxes(BOXES).gravity_center.double()
    dist = torch.cdist(points, truth)
    assert dist.min(0).values.max() < 0.01          # every GT centre has a query within 1 cm
    # content: the image feature at the peak through the linear layer (+ a zero class embedding)
    labels, where, _ = gen.peaks(centre['heatmap'])
    expected = gen.content_proj(feats[0, 0][:, where[0, :, 1], where[0, :, 2]].T)
    assert sorted(labels[0].tolist()) == [0, 2]
    assert torch.allclose(queries.content[0], expected, atol=1e-6)


def test_predicted_depth_and_offset_are_used_outside_training_and_after_the_switch():
    geometry = _geometry(None)
    centre, _ = _centres_with_peaks_on_the_targets(geometry)
    truth = torch.tensor([[20.0, 2.0, 1.4], [35.0, -6.0, 0.5]], dtype=torch.float64)
    for gen in (_generator(use_gt_depth=True).eval(), _generator(use_gt_depth=False).train()):
        ref = gen(QueryInputs(1, img_feats=torch.zeros(1, 1, 8, *centre['log_depth'].shape[-2:]),
                              img_centre=centre, geometry=geometry)).ref
        points = denormalize_points(ref[0].double(), PC_RANGE)
        # every query sits on a pixel ray at 50 m along the optical axis (x - 0.5 in this rig)
        assert torch.allclose(points[:, 0], torch.full((2,), 50.5, dtype=torch.float64), atol=1e-3)
        assert torch.cdist(points, truth).min(0).values.min() > 1.0


def test_use_gt_depth_needs_the_targets_and_bad_sizes_are_errors():
    geometry = _geometry(None)
    centre, (h, w) = _centres_with_peaks_on_the_targets(geometry)
    del centre['targets']
    with pytest.raises(ValueError, match='targets'):
        _generator(use_gt_depth=True).train()(QueryInputs(1, img_feats=torch.zeros(1, 1, 8, h, w),
                                                          img_centre=centre, geometry=geometry))
    with pytest.raises(ValueError, match='exceed'):
        _generator(num_query=3 * h * w + 1).peaks(centre['heatmap'])
    with pytest.raises(ValueError, match='img_centre_head'):
        _generator()(QueryInputs(1))


def test_composite_queries_concatenate_bev_and_camera_peaks_in_order():
    """A fusion model's queries: the BEV heatmap's peaks, then the camera peaks; each part
    is what its generator gives alone."""
    from mmdet3d.registry import MODELS
    from plugin.models.query_generators import CompositeQueries
    geometry = _geometry(None)
    centre, (h, w) = _centres_with_peaks_on_the_targets(geometry)
    torch.manual_seed(0)
    comp = CompositeQueries([dict(type='BEVHeatmapQueries', num_query=4), dict(type='CameraPeakQueries', num_query=2,
                                                                              in_channels=8)],
                            num_classes=3, embed_dims=16, pc_range=PC_RANGE)
    comp.init_weights()
    assert comp.num_query == 6 and MODELS.get("CompositeQueries") is CompositeQueries
    for g in comp.generators:
        for p in g.parameters():
            torch.nn.init.normal_(p)
    inputs = QueryInputs(1, bev_heatmap=torch.randn(1, 3, 8, 8), img_feats=torch.randn(1, 1, 8, h, w),
                         img_centre=centre, geometry=geometry)
    both = comp.eval()(inputs)
    bev, cam = comp.generators[0](inputs), comp.generators[1](inputs)
    assert torch.equal(both.ref, torch.cat([bev.ref, cam.ref], 1))
    assert torch.equal(both.content, torch.cat([bev.content, cam.content], 1))
    with pytest.raises(ValueError, match='empty'):
        CompositeQueries([])
