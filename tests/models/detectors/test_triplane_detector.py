"""The triplane CMT detector: config mismatches are clear errors, the head reads the planes,
and the synthetic config trains on a fixed batch and through the tools."""
import pytest
import torch
from mmengine.registry import init_default_scope

import plugin  # noqa: F401
from mmdet3d.registry import MODELS
from plugin.engine.device_amp_optim_wrapper import cpu_has_native_bf16
from tests.helpers.camera_rig import IMG_H, IMG_W, STRIDE, geometry
from tests.helpers.repo import REPO, run_tool
from tests.helpers.tiny_cmt import fit_fixed_batch, printed_metrics, tiny_cfg, tiny_options

TRIPLANE_CONFIG = f'{REPO}/configs/synthetic/cmt-triplane_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'


def _synthetic_model():
    from mmengine.config import Config
    init_default_scope('mmdet3d')
    return Config.fromfile(TRIPLANE_CONFIG)


def test_config_mismatches_are_clear_errors():
    cfg = _synthetic_model()
    no_neck = cfg.model.copy()
    no_neck.pop('triplane')
    with pytest.raises(ValueError, match='model.triplane'):
        MODELS.build(no_neck)
    cfg.model.pts_bbox_head.triplane_cfg = dict(in_channels=16)
    with pytest.raises(ValueError, match='output_channels'):
        MODELS.build(cfg.model)


def test_head_query_enrichment_starts_at_zero_then_reads_the_planes():
    cfg = _synthetic_model()
    head_cfg = cfg.model.pts_bbox_head
    head_cfg.update(num_query=20, dn_cfg=None, query_content='zeros', aux_heatmap_cfg=None,
                    query_generator=None, learned_queries=None)
    head_cfg.transformer.decoder.num_layers = 1
    torch.manual_seed(0)
    head = MODELS.build(head_cfg)
    head.init_weights()
    head.eval()
    bev = torch.randn(1, 256, 16, 16)
    img = torch.randn(1, 3, 128, IMG_H // STRIDE, IMG_W // STRIDE)
    planes = torch.randn(1, 3, 32, 8, 8)
    with torch.no_grad():
        base, _ = head(bev, img, geometry=geometry(1))
        same, _ = head(bev, img, triplane=planes, geometry=geometry(1))
        torch.testing.assert_close(same[0]['cls'], base[0]['cls'])
        head.triplane_query[-1].weight.normal_()
        moved, _ = head(bev, img, triplane=planes, geometry=geometry(1))
    assert (moved[0]['cls'] - base[0]['cls']).abs().max() > 1e-3


NATIVE_BF16 = pytest.mark.skipif(
    not cpu_has_native_bf16(),
    reason='this CPU emulates bfloat16 (~100x slower than float32): the numerics are checked on small modules')


@NATIVE_BF16
def test_triplane_detector_trains_on_a_fixed_batch_under_bf16_autocast(synthetic_root):
    """The synthetic triplane model: losses go down on one batch under CPU bf16 autocast,
    and the gradients reach the triplane tokens (through the zero-initialised BEV fusion
    and query layers, once their first update has moved them)."""
    seen = []

    def tokens_get_gradient(model, step):
        if step == 1:
            seen.append(float(model.triplane.generator.tokens.grad.abs().sum()))

    history = fit_fixed_batch(tiny_cfg(synthetic_root, TRIPLANE_CONFIG), 30, torch.bfloat16, tokens_get_gradient)
    assert seen and seen[0] > 0
    assert min(history[-5:]) < 0.7 * history[0], history


def test_triplane_config_trains_and_tests_through_the_tools(synthetic_root, tmp_path):
    """One epoch of the synthetic triplane config through tools/train.py (mixed precision by
    its DeviceAmpOptimWrapper, resumable checkpoint), then tools/test.py: nuScenes metrics."""
    work = str(tmp_path)
    train = run_tool('tools/train.py', TRIPLANE_CONFIG, '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1',
                     'train_cfg.val_interval=100', *tiny_options(synthetic_root))
    assert 'Epoch(train) [1]' in train.stdout + train.stderr
    ckpt = torch.load(f'{work}/epoch_1.pth', map_location='cpu', weights_only=False)
    assert any(k.startswith('triplane.generator.tokens') for k in ckpt['state_dict'])
    test = run_tool('tools/test.py', TRIPLANE_CONFIG, f'{work}/epoch_1.pth', '--work-dir', work,
                    '--cfg-options', *tiny_options(synthetic_root))
    assert {'mAP', 'NDS'} <= set(printed_metrics(test.stdout + test.stderr))
