"""The modality-dropout study: its models, its resumable runs and its report."""
import json
import math
import os
import os.path as osp

import pytest

from tests.helpers.repo import REPO, load_tool


@pytest.fixture(scope='module')
def study():
    return load_tool('projects/studies/modality_dropout.py')


@pytest.fixture(scope='module')
def runs():
    return load_tool('projects/studies/runs.py')


def test_models_are_the_synthetic_configs_with_and_without_masking(study):
    from mmengine.config import Config
    for name, config in study.MODELS.items():
        cfg = Config.fromfile(osp.join(REPO, config))
        types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
        assert ('ModalityDropout' in types) == name.endswith('-moddrop')
        assert ('aqr_cfg' in cfg.model.pts_bbox_head) == name.startswith('aqr')
    scenarios = Config.fromfile(osp.join(REPO, 'configs/robustness/scenarios.py')).scenarios
    assert all(s in scenarios for s in study.SCENARIOS)


class _FakeTools:
    """Stands in for tools/train.py and tools/robustness_eval.py: records the commands and
    writes what they would (a checkpoint; a robustness.json with the asked scenarios)."""

    def __init__(self):
        self.calls = []

    def __call__(self, cmd, log_path):
        tool = osp.basename(cmd[1])
        self.calls.append(tool)
        if tool == 'train.py':
            work_dir = cmd[cmd.index('--work-dir') + 1]
            open(osp.join(work_dir, 'epoch_2.pth'), 'w').close()
        else:
            out = cmd[cmd.index('--work-dir') + 1]
            names = cmd[cmd.index('--scenarios') + 1:]
            os.makedirs(out, exist_ok=True)
            with open(osp.join(out, 'robustness.json'), 'w') as f:
                json.dump(dict(rows=[dict(scenario=n, mAP=0.1, NDS=0.2) for n in names]), f)


def test_runs_resume_and_refuse_another_config_or_seed(runs, tmp_path, monkeypatch):
    from mmengine.config import Config
    fake = _FakeTools()
    monkeypatch.setattr(runs, 'run', fake)
    cfg = Config(dict(train_cfg=dict(max_epochs=2), model=dict(type='A'), unused_variable=1))
    work = str(tmp_path / 'a_seed0')
    rows = runs.train_and_test(cfg, work, 0, ['clean', 'lidar_drop'], 'a')
    assert fake.calls == ['train.py', 'robustness_eval.py'] and set(rows) == {'clean', 'lidar_drop'}
    assert Config.fromfile(osp.join(work, 'study_config.py')).model == dict(type='A')
    runs.train_and_test(cfg, work, 0, ['lidar_drop'], 'a')              # all tested before: nothing runs
    assert len(fake.calls) == 2
    # a new scenario: tested, not trained, and the earlier scenarios are kept
    rows = runs.train_and_test(cfg, work, 0, ['camera_all_drop'], 'a')
    assert fake.calls[2:] == ['robustness_eval.py'] and set(rows) == {'clean', 'lidar_drop', 'camera_all_drop'}
    # a variable the run does not use is not another run
    runs.train_and_test(Config(dict(cfg.to_dict(), unused_variable=2)), work, 0, ['clean'], 'a')
    with pytest.raises(SystemExit, match='another config or seed'):
        runs.train_and_test(cfg, work, 1, ['clean'], 'a')
    other = Config(dict(train_cfg=dict(max_epochs=2), model=dict(type='B')))
    with pytest.raises(SystemExit, match='another config or seed'):
        runs.train_and_test(other, work, 0, ['clean'], 'a')
    assert len(fake.calls) == 3


def test_runs_from_before_the_record_are_judged_by_their_saved_config(runs, tmp_path, monkeypatch):
    from mmengine.config import Config
    fake = _FakeTools()
    monkeypatch.setattr(runs, 'run', fake)
    cfg = Config(dict(train_cfg=dict(max_epochs=2), model=dict(type='A')))
    work = str(tmp_path / 'a_seed0')
    runs.train_and_test(cfg, work, 0, ['clean'], 'a')
    os.remove(osp.join(work, 'study_run.json'))
    runs.train_and_test(cfg, work, 0, ['clean'], 'a')                   # its study_config.py is this config
    os.remove(osp.join(work, 'study_run.json'))
    with pytest.raises(SystemExit, match='another config'):
        runs.train_and_test(Config(dict(train_cfg=dict(max_epochs=12), model=dict(type='A'))), work, 0, ['clean'], 'a')
    os.remove(osp.join(work, 'study_config.py'))
    with pytest.raises(SystemExit, match='no record of the config'):
        runs.train_and_test(cfg, work, 0, ['clean'], 'a')
    copied = tmp_path / 'b_seed0'                                        # only a checkpoint copied in: used
    copied.mkdir()
    (copied / 'epoch_2.pth').write_bytes(b'')
    runs.train_and_test(cfg, str(copied), 0, ['clean'], 'b')
    assert fake.calls == ['train.py', 'robustness_eval.py', 'robustness_eval.py']


def test_report_gives_mean_spread_and_the_share_kept_without_lidar(study, tmp_path):
    def run(clean, drop):
        return dict(clean=dict(NDS=clean, mAP=clean / 2), lidar_drop=dict(NDS=drop, mAP=0.0),
                    camera_all_drop=dict(NDS=clean - 0.01, mAP=0.1))
    results = {('aqr', 0): run(0.30, 0.06), ('aqr', 1): run(0.26, 0.13), ('aqr-moddrop', 0): run(0.25, 0.125)}
    table = study.report(results, list(study.MODELS), study.SCENARIOS, [0, 1], str(tmp_path))
    summary = json.load(open(tmp_path / 'modality_dropout_study.json'))['summary']
    assert summary['aqr']['clean']['NDS'] == pytest.approx([0.28, math.sqrt(2) * 0.02])
    assert summary['aqr']['lidar_drop_kept'][0] == pytest.approx((0.2 + 0.5) / 2)
    assert summary['aqr']['n'] == 2 and 'cmt' not in summary
    assert '| aqr (2) | 0.280 +- 0.028 | 0.095 +- 0.049 | 0.270 +- 0.028 | 0.350 +- 0.212 |' in table
    assert '| aqr-moddrop (1) | 0.250 | 0.125 | 0.240 | 0.500 |' in table
    assert '| aqr (2) | 0.140 +- 0.014 | 0.000 +- 0.000 | 0.100 +- 0.000 |' in table
    assert (tmp_path / 'modality_dropout_study.md').read_text() == table
