"""Camera framing of study runs: input size, feature stride and zoom applied to a config."""
import os.path as osp

import pytest

from tests.helpers.repo import REPO, load_tool

CMT = 'configs/synthetic/cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'
FUTR = 'configs/synthetic/cmt-futr_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'


@pytest.fixture(scope='module')
def framing():
    return load_tool('projects/studies/framing.py')


def _cfg(path):
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, path))


def _pipelines(cfg):
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        yield cfg[loader].dataset.pipeline


def test_input_size_and_stride_change_nothing_else(framing):
    base = _cfg(FUTR)
    cfg = framing.framed(_cfg(FUTR), (320, 180), 4)
    assert cfg.model.img_backbone.out_indices == (0, 1, 2, 3) and framing.feature_stride(cfg) == 4
    assert cfg.model.img_neck.in_channels == [64, 128, 256, 512]
    sizes = [step['final_size'] for p in _pipelines(cfg) for step in p if step['type'] == 'MultiViewImageResizeCrop']
    assert sizes == [(320, 180)] * 3
    assert cfg.model.fusion_neck == base.model.fusion_neck and cfg.model.pts_bbox_head == base.model.pts_bbox_head
    assert framing.framed(_cfg(CMT), (256, 144), 8).model.img_neck.in_channels == [128, 256, 512]
    same = framing.framed(_cfg(FUTR))
    assert same.model == base.model and same.train_dataloader == base.train_dataloader


def test_zoom_enlarges_the_views_and_crops_their_centre(framing):
    from plugin.datasets.transforms.multiview_image_resize_crop import MultiViewImageResizeCrop
    base = framing.framed(_cfg(CMT), (256, 144), 8)
    cfg = framing.framed(_cfg(CMT), (256, 144), 8, zoom=2.5, view_size=(1600, 900))
    assert cfg.model == base.model
    for plain, zoomed in zip(_pipelines(base), _pipelines(cfg)):
        (a,) = [s for s in plain if s['type'] == 'MultiViewImageResizeCrop']
        (b,) = [s for s in zoomed if s['type'] == 'MultiViewImageResizeCrop']
        assert b['resize_lim'] == pytest.approx([2.5 * r for r in a['resize_lim']])
        assert b['final_size'] == (256, 144)
        (load,) = [s for s in zoomed if s['type'] == 'LoadMultiViewImageFromFilesReduced']
        assert load['reduce'] == 2          # 1600 / 2 = 800 >= 256 * 2.5 * 1.25 = 800 > 1600 / 4
        step = MultiViewImageResizeCrop(**{k: v for k, v in dict(b, test_mode=True).items() if k != 'type'})
        scale, new_w, new_h, x0, y0, flip = step._draw(900, 1600)
        assert scale == pytest.approx(256 / 1600 * 2.5 * sum(a['resize_lim']) / 2)
        assert abs(x0 + 128 - new_w / 2) <= 1 and abs(y0 + 72 - new_h / 2) <= 1 and not flip
    with pytest.raises(ValueError, match='--zoom'):
        framing.framed(_cfg(CMT), (256, 144), 8, zoom=0.5, view_size=(1600, 900))
    with pytest.raises(ValueError, match='too few'):     # at scale 0.94 the crop would start above the view
        framing.framed(_cfg(CMT), (256, 144), 8, zoom=1.0, view_size=(1600, 900))
    for zoom in (1.3, 5.0):                               # the smallest scale of the draw still fits
        step = [s for s in framing.framed(_cfg(CMT), (256, 144), 8, zoom=zoom, view_size=(1600, 900))
                .train_dataloader.dataset.pipeline if s['type'] == 'MultiViewImageResizeCrop'][0]
        lo = step['resize_lim'][0]
        smallest = MultiViewImageResizeCrop((256, 144), resize_lim=(lo, lo), bot_pct_lim=step['bot_pct_lim'])
        _, _, new_h, _, y0, _ = smallest._draw(900, 1600)
        assert 0 <= y0 and y0 + 144 <= new_h


def test_bad_settings_are_refused(framing):
    with pytest.raises(ValueError, match='--stride'):
        framing.framed(_cfg(CMT), (320, 180), 2)
    with pytest.raises(ValueError, match='img_backbone'):
        framing.framed(_cfg('configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'), (320, 180), 4)


def test_cells_per_degree_follows_the_focal_length_and_the_stride(framing, synthetic_root):
    import math
    from tests.helpers.tiny_cmt import tiny_cfg
    from plugin.models.utils import focal_lengths  # noqa: F401  (registers the plugin)
    at16 = framing.cells_per_degree(tiny_cfg(synthetic_root))
    at8 = framing.cells_per_degree(framing.framed(tiny_cfg(synthetic_root), stride=8))
    assert at8 == pytest.approx(2 * at16)
    # the front camera: 1266 px focal at 1600 wide; the test views are 800 wide, resized to 256
    # wide at the mean scale of resize_lim (0.94, 1.25)
    assert at16 == pytest.approx(1266 / 2 * 256 / 800 * 1.095 * math.tan(math.radians(1)) / 16, rel=1e-3)
