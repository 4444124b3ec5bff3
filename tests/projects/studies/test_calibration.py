"""The calibration-noise study: its training configs, its scenarios and its report."""
import json
import math
import os.path as osp

import pytest

from tests.helpers.repo import REPO, load_tool


@pytest.fixture(scope='module')
def study():
    return load_tool('projects/studies/calibration.py')


def _pipelines(cfg):
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        yield cfg[loader].dataset.pipeline


def test_study_config_changes_the_input_size_and_the_stride_only(study):
    from mmengine.config import Config
    base = Config.fromfile(osp.join(REPO, study.MODELS['futr']))
    cfg = study.study_config(study.MODELS['futr'], (320, 180), 4)
    assert cfg.model.img_backbone.out_indices == (0, 1, 2, 3)
    assert cfg.model.img_neck.in_channels == [64, 128, 256, 512]
    sizes = [step['final_size'] for p in _pipelines(cfg) for step in p if step['type'] == 'MultiViewImageResizeCrop']
    assert sizes == [(320, 180)] * 3
    assert cfg.model.fusion_neck == base.model.fusion_neck and cfg.model.pts_bbox_head == base.model.pts_bbox_head
    assert study.study_config(study.MODELS['cmt'], (256, 144), 8).model.img_neck.in_channels == [128, 256, 512]
    same = study.study_config(study.MODELS['futr'])
    assert same.model == base.model and same.train_dataloader == base.train_dataloader


def test_zoom_enlarges_the_views_and_crops_their_centre(study):
    from plugin.datasets.transforms.multiview_image_resize_crop import MultiViewImageResizeCrop
    base = study.study_config(study.MODELS['cmt'], (256, 144), 8)
    cfg = study.study_config(study.MODELS['cmt'], (256, 144), 8, zoom=2.5, view_size=(1600, 900))
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
        study.study_config(study.MODELS['cmt'], (256, 144), 8, zoom=0.5, view_size=(1600, 900))
    with pytest.raises(ValueError, match='too few'):     # at scale 0.94 the crop would start above the view
        study.study_config(study.MODELS['cmt'], (256, 144), 8, zoom=1.0, view_size=(1600, 900))
    for zoom in (1.3, 5.0):                               # the smallest scale of the draw still fits
        step = [s for s in study.study_config(study.MODELS['cmt'], (256, 144), 8, zoom=zoom, view_size=(1600, 900))
                .train_dataloader.dataset.pipeline if s['type'] == 'MultiViewImageResizeCrop'][0]
        lo = step['resize_lim'][0]
        smallest = MultiViewImageResizeCrop((256, 144), resize_lim=(lo, lo), bot_pct_lim=step['bot_pct_lim'])
        _, _, new_h, _, y0, _ = smallest._draw(900, 1600)
        assert 0 <= y0 and y0 + 144 <= new_h


def test_bad_settings_are_refused(study):
    with pytest.raises(ValueError, match='--stride'):
        study.study_config(study.MODELS['cmt'], (320, 180), 2)
    with pytest.raises(ValueError, match='img_backbone'):
        study.study_config('configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py', (320, 180), 4)


def test_scenarios_move_the_cameras_by_the_stated_amount_only(study):
    from mmengine.config import Config
    scenarios = Config.fromfile(osp.join(REPO, 'configs/robustness/scenarios.py')).scenarios
    for deg, name in study.ROTATIONS.items():
        (t,) = scenarios[name].transforms
        assert (t.type, t.rotation_deg, t.translation_cm) == ('CalibrationNoise', deg, 0.0)
    for cm, name in study.TRANSLATIONS.items():
        (t,) = scenarios[name].transforms
        assert (t.rotation_deg, t.translation_cm) == (0.0, cm)


def test_report_gives_mean_and_spread_over_seeds(study, tmp_path):
    names = ['clean', *study.ROTATIONS.values(), *study.TRANSLATIONS.values(), study.CAMERAS_BLANK]

    def run(offset):
        return {n: dict(scenario=n, NDS=0.3 - 0.01 * i + offset, mAP=0.1) for i, n in enumerate(names)}
    results = {('cmt', 0): run(0.0), ('cmt', 1): run(0.02), ('sparsebev', 0): run(0.1)}
    args = type('Args', (), dict(image_size=[320, 180], stride=4, models=['cmt', 'sparsebev'], zoom=2.5,
                                 rotations=[4.0, 0.5, 1.0, 2.0], work_root=str(tmp_path)))()
    study.report(results, args, cells=1.2)
    summary = json.load(open(tmp_path / 'calibration_study.json'))['summary']
    assert summary['cmt']['clean']['mean'] == pytest.approx(0.31)
    assert summary['cmt']['calib_4deg']['std'] == pytest.approx(math.sqrt(2) * 0.01)
    assert summary['cmt']['clean']['n'] == 2 and summary['sparsebev']['clean']['n'] == 1
    table = (tmp_path / 'calibration_study.md').read_text()
    assert '| cmt (2) | 0.310 +- 0.014 |' in table and '| sparsebev (1) | 0.400 |' in table
    assert '1.20 feature cells' in table and 'enlarged 2.5x' in table
    header = table.splitlines()[2]
    assert header.startswith('| model (n) | clean | 0.5 deg | 1 deg | 2 deg | 4 deg | 5 cm | 20 cm |')
    assert '| all cameras blank | NDS at 4 deg / clean |' in header and '8 deg' not in header
    assert summary['cmt'][study.CAMERAS_BLANK]['mean'] == pytest.approx(0.31 - 0.01 * (len(names) - 1))
    assert (tmp_path / 'calibration_study.png').stat().st_size > 10_000
