"""The calibration-noise study: its training configs, its scenarios and its report."""
import json
import math
import os.path as osp

import pytest

from tests.helpers.repo import REPO, load_tool


@pytest.fixture(scope='module')
def study():
    return load_tool('projects/robustness/run_calibration_study.py')


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


def test_bad_settings_are_refused(study):
    with pytest.raises(ValueError, match='--stride'):
        study.study_config(study.MODELS['cmt'], (320, 180), 2)
    with pytest.raises(ValueError, match='img_backbone'):
        study.study_config('configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py', (320, 180), 4)


def test_scenarios_move_the_cameras_by_the_stated_amount_only(study):
    from mmengine.config import Config
    scenarios = Config.fromfile(osp.join(REPO, 'projects/robustness/scenarios.py')).scenarios
    for deg, name in study.ROTATIONS.items():
        (t,) = scenarios[name].transforms
        assert (t.type, t.rotation_deg, t.translation_cm) == ('CalibrationNoise', deg, 0.0)
    for cm, name in study.TRANSLATIONS.items():
        (t,) = scenarios[name].transforms
        assert (t.rotation_deg, t.translation_cm) == (0.0, cm)


def test_report_gives_mean_and_spread_over_seeds(study, tmp_path):
    names = ['clean', *study.ROTATIONS.values(), *study.TRANSLATIONS.values()]

    def run(offset):
        return {n: dict(scenario=n, NDS=0.3 - 0.01 * i + offset, mAP=0.1) for i, n in enumerate(names)}
    results = {('cmt', 0): run(0.0), ('cmt', 1): run(0.02), ('sparsebev', 0): run(0.1)}
    args = type('Args', (), dict(image_size=[320, 180], stride=4, models=['cmt', 'sparsebev'],
                                 work_root=str(tmp_path)))()
    study.report(results, args, cells=1.2)
    summary = json.load(open(tmp_path / 'calibration_study.json'))['summary']
    assert summary['cmt']['clean']['mean'] == pytest.approx(0.31)
    assert summary['cmt']['calib_4deg']['std'] == pytest.approx(math.sqrt(2) * 0.01)
    assert summary['cmt']['clean']['n'] == 2 and summary['sparsebev']['clean']['n'] == 1
    table = (tmp_path / 'calibration_study.md').read_text()
    assert '| cmt (2) | 0.310 +- 0.014 |' in table and '| sparsebev (1) | 0.400 |' in table
    assert '1.20 feature cells' in table
    assert (tmp_path / 'calibration_study.png').stat().st_size > 10_000
