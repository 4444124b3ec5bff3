"""The studies runner: every study's arms build, the order of runs, the overrides each run
gets, and a real run of 2 gloo processes per run through tools/dist_train.sh."""
import glob
import json
import os.path as osp

import pytest

from tests.helpers.repo import REPO, load_tool
from tests.helpers.tiny_cmt import tiny_options

FUTR = 'configs/synthetic/cmt-futr_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'


@pytest.fixture(scope='module')
def runner():
    return load_tool('projects/studies/run_study.py')


@pytest.fixture(scope='module')
def studies():
    return load_tool('projects/studies/studies.py')


def _config(runner, study, arm, seed=0, *argv):
    return runner.build_config(study, study.arm(arm), seed, runner.parse_args(['window', *argv]))


def test_every_arm_of_every_study_builds_on_each_of_its_data_sets(runner, studies):
    from mmengine.config import Config
    scenarios = Config.fromfile(osp.join(REPO, 'configs/robustness/scenarios.py')).scenarios
    for name, study in studies.STUDIES.items():
        assert osp.isfile(osp.join(REPO, study.results)), name
        assert all(s in scenarios for s in study.scenarios) and set(study.ratios) <= set(study.scenarios)
        for data in study.configs:
            argv = ['--nuscenes'] if data == 'nuscenes' else []
            for arm in study.arms:
                cfg = runner.build_config(study, arm, 3, runner.parse_args([name, *argv]))
                assert cfg.randomness.seed == 3 and osp.samefile(cfg.filename, osp.join(
                    REPO, study.configs[data][arm.config])), (name, arm)


def test_arms_are_their_config_with_their_overrides_only(runner, studies):
    from mmengine.config import Config
    window = studies.STUDIES['window']
    aqr = Config.fromfile(osp.join(REPO, window.configs['synthetic']['aqr']))
    w5 = _config(runner, window, 'aqr-w5', 1)
    assert w5.model.pts_bbox_head.aqr_cfg.bias.window_size == 5 and w5.train_cfg.val_interval == 5
    w5.model.pts_bbox_head.aqr_cfg.bias.window_size = aqr.model.pts_bbox_head.aqr_cfg.bias.window_size
    assert w5.model == aqr.model and w5.train_dataloader == aqr.train_dataloader
    assert _config(runner, window, 'aqr-9m').model.pts_bbox_head.aqr_cfg.bias.window_size_m == 9.0
    assert 'aqr_cfg' not in _config(runner, window, 'cmt').model.pts_bbox_head
    for arm in studies.STUDIES['modality_dropout'].arms:
        cfg = runner.build_config(studies.STUDIES['modality_dropout'], arm, 0, runner.parse_args(['modality_dropout']))
        types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
        assert ('ModalityDropout' in types) == ('-moddrop' in arm.name)
        assert ('aqr_cfg' in cfg.model.pts_bbox_head) == arm.name.startswith('aqr')
        if arm.name == 'cmt-moddrop-learned50':   # 150 BEV + 100 camera peaks + 50 learned points
            head = cfg.model.pts_bbox_head
            assert head.learned_queries == 50 and head.query_generator.generators[1].num_query == 100
            assert head.num_query == 300


def test_every_run_gets_the_options_the_data_root_and_the_framing(runner, studies):
    cfg = _config(runner, studies.STUDIES['window'], 'cmt', 0, '--data-root', '/d/x', '--val-interval', '2',
                  '--cfg-options', 'model.pts_bbox_head.num_query=60', 'optim_wrapper.optimizer.lr=0.5',
                  '--image-size', '320', '180', '--stride', '8')
    assert cfg.model.pts_bbox_head.num_query == 60 and cfg.optim_wrapper.optimizer.lr == 0.5
    assert cfg.train_cfg.val_interval == 2 and cfg.model.img_neck.in_channels == [128, 256, 512]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == '/d/x/'
    assert cfg.val_evaluator.ann_file == '/d/x/nuscenes_infos_val.pkl' and cfg.test_evaluator.data_root == '/d/x/'
    with pytest.raises(SystemExit, match='runs on synthetic only'):
        runner.build_config(studies.STUDIES['calibration'], studies.STUDIES['calibration'].arm('cmt'), 0,
                            runner.parse_args(['calibration', '--nuscenes']))


def test_calibration_scenarios_move_the_cameras_by_the_stated_amount_only(studies):
    from mmengine.config import Config
    scenarios = Config.fromfile(osp.join(REPO, 'configs/robustness/scenarios.py')).scenarios
    (rotations, translations) = studies.STUDIES['calibration'].noise_axes.values()
    for deg, name in rotations.items():
        (t,) = scenarios[name].transforms
        assert (t.type, t.rotation_deg, t.translation_cm) == ('CalibrationNoise', deg, 0.0)
    for cm, name in translations.items():
        (t,) = scenarios[name].transforms
        assert (t.rotation_deg, t.translation_cm) == (0.0, cm)


def test_seeds_outer_and_config_arms_in_the_dry_run(runner, capsys, tmp_path):
    runner.main(['window', '--dry-run', '--arms', 'cmt', 'aqr-w5', '--configs', FUTR, '--seeds', '0', '1',
                 '--work-root', str(tmp_path)])
    heads = [line for line in capsys.readouterr().out.splitlines() if line.startswith('== ')]
    assert [h.split(' [')[0] for h in heads] == ['== cmt, seed 0', '== aqr-w5, seed 0', '== cmt-futr, seed 0',
                                                 '== cmt, seed 1', '== aqr-w5, seed 1', '== cmt-futr, seed 1']
    futr_cmd = heads[2].split(']: ', 1)[1].split()
    assert futr_cmd[2] == osp.join(str(tmp_path), 'cmt-futr_seed0', 'study_config.py')
    assert len({h.split('[')[1][:12] for h in heads}) == 6          # six different runs
    runner.main(['window', '--dry-run', '--configs', FUTR, '--work-root', str(tmp_path)])   # only the config
    assert [h.split(' [')[0] for h in capsys.readouterr().out.splitlines() if h.startswith('== ')] == [
        f'== cmt-futr, seed {s}' for s in (0, 1, 2)]
    with pytest.raises(SystemExit, match="no arm 'aqr-w7'"):
        runner.main(['window', '--dry-run', '--arms', 'aqr-w7'])
    with pytest.raises(SystemExit, match='no config file configs/missing.py'):
        runner.main(['window', '--dry-run', '--configs', 'configs/missing.py'])


def test_two_gloo_processes_per_run(runner, synthetic_root, tmp_path):
    tiny = [o for o in tiny_options(synthetic_root) if 'data_root' not in o and 'ann_file' not in o]
    argv = ['window', '--arms', 'aqr-w5', '--seeds', '3', '--gpus', '2', '--port', '29538',
            '--data-root', synthetic_root, '--work-root', str(tmp_path), '--val-interval', '1',
            '--cfg-options', 'train_cfg.max_epochs=1', *tiny]
    runner.main(argv)
    log = open(glob.glob(osp.join(tmp_path, 'aqr-w5_seed3', '*', '*.log'))[0]).read()
    assert "dist_cfg: {'backend': 'gloo'}" in log and 'Distributed launcher: pytorch' in log
    assert 'Epoch(train) [1][4/4]' in log              # 16 training samples, batch 2, split over 2 processes
    assert 'seed: 3' in log
    table = open(osp.join(tmp_path, 'window.md')).read()
    assert '| aqr-w5 | 3 |' in table
    record = json.load(open(osp.join(tmp_path, 'aqr-w5_seed3', 'study_run.json')))
    assert record['signature']['gpus'] == 2 and record['train']['memory_mb'] > 100
    # invoked again, the finished run is read back from its record, not trained again
    trainings = sorted(glob.glob(osp.join(tmp_path, 'aqr-w5_seed3', '2*')))
    runner.main(argv)
    assert sorted(glob.glob(osp.join(tmp_path, 'aqr-w5_seed3', '2*'))) == trainings
    assert open(osp.join(tmp_path, 'window.md')).read() == table
    runner.main([*argv, '--report-only'])
    assert open(osp.join(tmp_path, 'window.md')).read() == table
