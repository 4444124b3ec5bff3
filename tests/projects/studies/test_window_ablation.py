"""The window-ablation runner: its arms, seeds and launch commands, the mean and spread it
reports, and a real run of 2 gloo processes through tools/dist_train.sh."""
import glob
import math
import os.path as osp

import pytest

from tests.helpers.repo import load_tool
from tests.helpers.tiny_cmt import tiny_options


@pytest.fixture(scope='module')
def runner():
    return load_tool('projects/studies/window_ablation.py')


def test_arms_in_cells_and_in_metres(runner):
    assert [a[0] for a in runner.arms(None, None, True)] == ['CMT (no bias)', 'AQR window 5', 'AQR window 15',
                                                          'AQR window 25']
    (name, which, opts), = runner.arms(None, [9], False)
    assert (name, which, opts) == ('AQR window 9 m', 'aqr', ['model.pts_bbox_head.aqr_cfg.bias.window_size_m=9.0'])


def test_whole_configs_as_arms(runner):
    futr = 'configs/synthetic/cmt-futr_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'
    # with configs and no windows there are no window arms
    assert runner.arms(None, None, True, [futr]) == [('CMT (no bias)', 'baseline', []), ('cmt-futr', futr, [])]
    assert [a[0] for a in runner.arms([5], None, False, [futr])] == ['AQR window 5', 'cmt-futr']
    with pytest.raises(SystemExit, match='no config file configs/missing.py'):
        runner.arms(None, None, False, ['configs/missing.py'])


def test_seeds_outer_config_arms_in_the_dry_run(runner, capsys, tmp_path):
    futr = 'configs/synthetic/cmt-futr_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'
    runner.main(['--dry-run', '--windows', '5', '--configs', futr, '--seeds', '0', '1', '--work-dir', str(tmp_path)])
    heads = [line for line in capsys.readouterr().out.splitlines() if line.startswith('== ')]
    assert [h.split(':')[0] for h in heads] == ['== CMT (no bias), seed 0', '== AQR window 5, seed 0',
                                                '== cmt-futr, seed 0', '== CMT (no bias), seed 1',
                                                '== AQR window 5, seed 1', '== cmt-futr, seed 1']
    futr_cmd = heads[2].split(': ', 1)[1].split()
    assert futr_cmd[2] == futr and futr_cmd[4] == osp.join(str(tmp_path), 'cmt-futr_seed0')
    assert 'randomness.seed=0' in futr_cmd and not any('aqr_cfg' in o for o in futr_cmd)


def test_launch_commands(runner):
    cmd, _ = runner.train_command('c.py', 'w', ['a=1'], ['--amp'])
    assert cmd[1].endswith('tools/train.py') and cmd[2:] == ['c.py', '--work-dir', 'w', '--cfg-options', 'a=1',
                                                            '--amp']
    cmd, env = runner.train_command('c.py', 'w', ['a=1'], ['--amp'], gpus=8, port=29600)
    assert cmd[0] == 'bash' and cmd[1].endswith('tools/dist_train.sh') and cmd[2:4] == ['c.py', '8']
    assert cmd[-1] == '--amp' and env['PORT'] == '29600'
    assert runner.train_command('c.py', 'w', [], [], gpus=1, launcher='pytorch')[0][3] == '1'
    with pytest.raises(ValueError, match='--launcher pytorch'):
        runner.train_command('c.py', 'w', [], [], gpus=2, launcher='none')


def test_mean_and_spread_over_seeds(runner):
    p = runner.PREFIX

    def run(name, seed, m, n):
        return dict(name=name, seed=seed, iter_s=1.0, memory_mb=10.0, evals=[(5, {p + 'mAP': 0.0, p + 'NDS': 0.0}),
                                                                              (10, {p + 'mAP': m, p + 'NDS': n})])
    rows = runner.summarise([run('a', 0, 0.1, 0.2), run('a', 1, 0.3, 0.4), run('b', 0, 0.5, 0.6)])
    assert rows[0]['seeds'] == [0, 1] and rows[0]['mAP'][0] == pytest.approx(0.2)
    assert rows[0]['mAP'][1] == pytest.approx(math.sqrt(0.02))
    assert math.isnan(rows[1]['NDS'][1]) and rows[1]['NDS'][0] == pytest.approx(0.6)


def test_records_are_reused_only_for_the_same_command(runner, tmp_path):
    path = str(tmp_path / 'aqr_window_5_seed0.json')
    rec = dict(name='AQR window 5', seed=0, evals=[[10, {'x': 1.0}]], iter_s=1.0, memory_mb=2.0, cmd=['train', 'a=1'])
    runner.save_record(path, rec)
    assert runner.load_record(path, ['train', 'a=1']) == rec and not osp.exists(path + '.tmp')
    assert runner.load_record(path, ['train', 'a=2']) is None            # other options: train again
    assert runner.load_record(str(tmp_path / 'missing.json'), ['train']) is None


def test_two_gloo_processes_per_run(runner, synthetic_root, tmp_path):
    tiny = [o for o in tiny_options(synthetic_root) if 'data_root' not in o and 'ann_file' not in o]
    argv = ['--no-baseline', '--windows', '5', '--seeds', '3', '--gpus', '2', '--port', '29538',
            '--data-root', synthetic_root, '--work-dir', str(tmp_path), '--val-interval', '1',
            '--cfg-options', 'train_cfg.max_epochs=1', *tiny]
    runner.main(argv)
    log = open(glob.glob(osp.join(tmp_path, 'aqr_window_5_seed3', '*', '*.log'))[0]).read()
    assert "dist_cfg: {'backend': 'gloo'}" in log and 'Distributed launcher: pytorch' in log
    assert 'Epoch(train) [1][4/4]' in log              # 16 training samples, batch 2, split over 2 processes
    assert 'seed: 3' in log
    table = open(osp.join(tmp_path, 'window_ablation.md')).read()
    assert '| AQR window 5 | 3 |' in table
    # invoked again, the finished run is read back from its record, not trained again
    trainings = sorted(glob.glob(osp.join(tmp_path, 'aqr_window_5_seed3', '2*')))
    runner.main(argv)
    assert sorted(glob.glob(osp.join(tmp_path, 'aqr_window_5_seed3', '2*'))) == trainings
    assert open(osp.join(tmp_path, 'window_ablation.md')).read() == table
