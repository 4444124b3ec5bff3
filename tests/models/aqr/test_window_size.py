"""AQR windows in metres: the rounding to odd cell counts, and metre windows giving exactly
the bias and the LAM of the equivalent cell counts."""
import pytest
import torch

import plugin  # noqa: F401
from aqr_attention.window_size import bev_cell_size, odd_cells
from plugin.models.utils import focal_lengths
from plugin.models.aqr import AQRWeightGenerator, AttentionBiasGenerator
from tests.helpers.aqr_inputs import PC_RANGE, aqr_inputs

# aqr_inputs: 102.4 m over a 6 x 5 BEV grid (17.07 m x 20.48 m cells, 18.77 m on average);
# two 64 x 32 cameras of focal 32 px with 3 x 4 feature maps (stride 16): at the 20 m
# reference depth a feature pixel spans 20 * 16 / 32 = 10 m
BEV_CELL = 0.5 * (102.4 / 5 + 102.4 / 6)


@pytest.mark.parametrize('metres, cell, cells', [
    (3.0, 0.6, 5), (9.0, 0.6, 15), (15.0, 0.6, 25),          # the design's windows on nuScenes' grid
    (8.0, 1.6, 5), (9.0, 1.6, 5), (15.0, 1.6, 9), (24.0, 1.6, 15),
    (0.5, 1.6, 1), (4.0, 1.6, 3), (2.0 * 1.6, 1.6, 3),      # tiny -> 1; a count of 2.5 and of 2 round up
])
def test_odd_cells_rounds_to_the_nearest_odd_count(metres, cell, cells):
    assert odd_cells(metres, cell) == cells


def test_cell_size_and_focal_length_are_read_from_the_config_and_the_calibration():
    inputs = aqr_inputs()
    assert bev_cell_size(PC_RANGE, (6, 5)) == pytest.approx(BEV_CELL)
    torch.testing.assert_close(focal_lengths(inputs[7].lidar2img), torch.full((2, 2), 32.0))


def _biases(**metre_cfg):
    """The bias of a generator in metres and of one in the equivalent cells, same weights."""
    inputs = aqr_inputs()
    layout, geometry = inputs[6], inputs[7]
    torch.manual_seed(0)
    aqr = AQRWeightGenerator(16, PC_RANGE, num_heads=4)
    torch.nn.init.normal_(aqr.weight_head.weight)
    weights = aqr(*inputs)
    metric = AttentionBiasGenerator(pc_range=PC_RANGE, bias_scale=2.0, **metre_cfg)
    cells = AttentionBiasGenerator(window_size=5, cam_window_size=3, bias_scale=2.0)
    return metric(weights, layout, geometry), cells(weights, layout, geometry)


def test_bias_in_metres_equals_the_bias_in_cells():
    metric, cells = _biases(window_size_m=5 * BEV_CELL + 0.1, cam_window_size_m=30.0)
    assert (metric.bev_window, metric.cam_window) == (cells.bev_window, cells.cam_window) == (5, 3)
    torch.testing.assert_close(metric.to_dense(), cells.to_dense(), atol=0, rtol=0)


def test_camera_window_follows_focal_length_and_reference_depth():
    inputs = aqr_inputs()
    gen = AttentionBiasGenerator(window_size=5, cam_window_size_m=30.0, cam_reference_depth=20.0)
    assert gen.window_sizes is None and gen.window_cells(inputs[6], inputs[7]) == (5, 3)
    far = AttentionBiasGenerator(window_size=5, cam_window_size_m=30.0, cam_reference_depth=6.0)
    assert far.window_cells(inputs[6], inputs[7]) == (5, 11)    # 30 m span 10 feature pixels at 6 m
    zoomed = inputs[7]._replace(lidar2img=torch.diag(torch.tensor([2.0, 2.0, 1.0, 1.0])) @ inputs[7].lidar2img)
    assert gen.window_cells(inputs[6], zoomed) == (5, 7)        # twice the focal: twice the pixels
    assert gen.window_cells(inputs[6], None) == (5, 1)          # no cameras: no camera window


def test_lam_in_metres_equals_the_lam_in_cells():
    inputs = aqr_inputs()
    torch.manual_seed(0)
    cells = AQRWeightGenerator(16, PC_RANGE, num_heads=4, window_sizes=(3, 3))
    metric = AQRWeightGenerator(16, PC_RANGE, num_heads=4, window_sizes_m=(3 * BEV_CELL, 30.0))
    metric.load_state_dict(cells.state_dict())
    torch.nn.init.normal_(cells.weight_head.weight)
    metric.weight_head.weight.data.copy_(cells.weight_head.weight)
    assert metric.window_cells(inputs[6], inputs[7]) == (3, 3) and metric.window_sizes is None
    a, b = cells(*inputs), metric(*inputs)
    torch.testing.assert_close(a.lidar_weight, b.lidar_weight, atol=0, rtol=0)
    torch.testing.assert_close(a.camera_weight, b.camera_weight, atol=0, rtol=0)
    half = AQRWeightGenerator(16, PC_RANGE, num_heads=4, window_sizes=(3, 5), window_sizes_m=(None, 30.0))
    assert half.window_cells(inputs[6], inputs[7]) == (3, 3)    # metres replace only their side


@pytest.mark.parametrize('cfg, key', [
    (dict(bev_window_size=5, bev_window_size_m=3.0, pc_range=PC_RANGE), 'bev_window_size and'),
    (dict(window_size_m=0.0, pc_range=PC_RANGE), r'aqr_cfg\.bias\.window_size_m'),
    (dict(window_size_m=float('nan'), pc_range=PC_RANGE), r'aqr_cfg\.bias\.window_size_m'),
    (dict(window_size_m=9.0), 'needs pc_range'),
    (dict(cam_window_size_m=9.0, cam_reference_depth=-1.0), r'aqr_cfg\.bias\.cam_reference_depth'),
])
def test_bad_metre_windows_name_the_key(cfg, key):
    with pytest.raises(ValueError, match=key):
        AttentionBiasGenerator(**cfg)
    with pytest.raises(ValueError, match=r'aqr_cfg\.router\.window_sizes_m\[0\]'):
        AQRWeightGenerator(16, PC_RANGE, window_sizes_m=(-3.0, None))


def test_the_window_ablation_in_metres_from_the_command_line():
    """--cfg-options model.pts_bbox_head.aqr_cfg.bias.window_size_m=9.0 on the synthetic
    AQR config: 9 m on its 1.6 m grid is 5 cells."""
    import os.path as osp

    from mmengine.config import Config

    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    from plugin.models.layers.key_layout import KeyLayout
    from tests.helpers.repo import REPO
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO, 'configs/synthetic/cmt-aqr_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'))
    cfg.merge_from_dict({'model.pts_bbox_head.aqr_cfg.bias.window_size_m': 9.0})
    head = MODELS.build(cfg.model.pts_bbox_head)
    assert head.attn_bias_generator.window_cells(KeyLayout.of((64, 64), None)) == (5, 1)
