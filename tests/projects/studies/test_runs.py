"""A study run: its launch command, its record, and resuming without repeating work."""
import json
import os
import os.path as osp

import pytest

from tests.helpers.repo import load_tool


@pytest.fixture(scope='module')
def runs():
    return load_tool('projects/studies/runs.py')


def test_launch_commands(runs):
    cmd, _ = runs.Launch(train_args=('--amp',)).command('c.py', 'w')
    assert cmd[1].endswith('tools/train.py') and cmd[2:] == ['c.py', '--work-dir', 'w', '--amp']
    cmd, env = runs.Launch(gpus=8, port=29600, train_args=('--amp',)).command('c.py', 'w')
    assert cmd[0] == 'bash' and cmd[1].endswith('tools/dist_train.sh') and cmd[2:4] == ['c.py', '8']
    assert cmd[-1] == '--amp' and env['PORT'] == '29600'
    assert runs.Launch(gpus=1, launcher='pytorch').command('c.py', 'w')[0][3] == '1'
    with pytest.raises(ValueError, match='--launcher pytorch'):
        runs.Launch(gpus=2, launcher='none')
    with pytest.raises(ValueError, match='--gpus'):
        runs.Launch(gpus=0)


class _FakeTools:
    """Stands in for tools/train.py and tools/robustness_eval.py: records the commands and
    writes what they would (a checkpoint and mmengine's scalars; a robustness.json with the
    asked scenarios)."""

    def __init__(self):
        self.calls = []

    def __call__(self, cmd, log_path, env=None):
        tool = osp.basename(cmd[1])
        self.calls.append(tool)
        out = cmd[cmd.index('--work-dir') + 1]
        if tool == 'train.py':
            open(osp.join(out, 'epoch_2.pth'), 'w').close()
            os.makedirs(osp.join(out, '20261207_000000', 'vis_data'))
            with open(osp.join(out, '20261207_000000', 'vis_data', 'scalars.json'), 'w') as f:
                for i, t in enumerate([9.0, 1.0, 2.0, 3.0, 4.0, 5.0]):
                    f.write(json.dumps(dict(time=t, epoch=1 + i // 3, memory=100 + i, step=i)) + '\n')
                f.write(json.dumps({runs_prefix + 'mAP': 0.25, runs_prefix + 'NDS': 0.5, 'step': 2}) + '\n')
        else:
            names = cmd[cmd.index('--scenarios') + 1:]
            os.makedirs(out, exist_ok=True)
            with open(osp.join(out, 'robustness.json'), 'w') as f:
                json.dump(dict(rows=[dict(scenario=n, mAP=0.1, NDS=0.2) for n in names]), f)
        return dict(peak_rss_mb=50.0, wall_s=1.0)


runs_prefix = 'NuScenes metric/pred_instances_3d_NuScenes/'


def test_a_run_is_trained_once_and_tested_once_per_scenario(runs, tmp_path, monkeypatch):
    from mmengine.config import Config
    fake = _FakeTools()
    monkeypatch.setattr(runs, 'call', fake)
    cfg = Config(dict(train_cfg=dict(max_epochs=2), model=dict(type='A'), unused_variable=1))
    work = str(tmp_path / 'a_seed0')
    launch = runs.Launch()
    rec = runs.run(cfg, work, 0, ['clean', 'lidar_drop'], launch, 'a')
    assert fake.calls == ['train.py', 'robustness_eval.py'] and set(rec['tests']) == {'clean', 'lidar_drop'}
    assert rec['train']['evals'] == [[2, {runs_prefix + 'mAP': 0.25, runs_prefix + 'NDS': 0.5, 'step': 2}]]
    assert rec['train']['iter_s'] == 3.0                    # the median after the first fifth (start-up)
    assert rec['train']['memory_mb'] == 105                 # mmengine's logged CUDA memory, when there is one
    assert Config.fromfile(osp.join(work, 'study_config.py')).model == dict(type='A')
    assert runs.read_record(work) == json.loads(json.dumps(rec))
    runs.run(cfg, work, 0, ['lidar_drop'], launch, 'a')      # done before: nothing runs
    assert len(fake.calls) == 2
    # a new scenario: tested, not trained, and the earlier tests are kept
    rec = runs.run(cfg, work, 0, ['camera_all_drop'], launch, 'a')
    assert fake.calls[2:] == ['robustness_eval.py'] and set(rec['tests']) == {'clean', 'lidar_drop', 'camera_all_drop'}
    # a variable the run does not use is not another run
    runs.run(Config(dict(cfg.to_dict(), unused_variable=2)), work, 0, ['clean'], launch, 'a')
    assert len(fake.calls) == 3


def test_a_directory_of_another_run_is_refused(runs, tmp_path, monkeypatch):
    from mmengine.config import Config
    monkeypatch.setattr(runs, 'call', _FakeTools())
    cfg = Config(dict(train_cfg=dict(max_epochs=2), model=dict(type='A')))
    work = str(tmp_path / 'a_seed0')
    runs.run(cfg, work, 0, [], runs.Launch(), 'a')
    for other in [(cfg, 1, runs.Launch()), (Config(dict(cfg.to_dict(), model=dict(type='B'))), 0, runs.Launch()),
                  (cfg, 0, runs.Launch(gpus=2)), (cfg, 0, runs.Launch(train_args=('--amp',)))]:
        with pytest.raises(SystemExit, match='another config, seed or launch'):
            runs.run(other[0], work, other[1], [], other[2], 'a')
    os.remove(osp.join(work, runs.RECORD))
    with pytest.raises(SystemExit, match='holds results but no study_run.json'):
        runs.run(cfg, work, 0, [], runs.Launch(), 'a')


def test_a_checkpoint_copied_in_is_tested_not_trained(runs, tmp_path, monkeypatch):
    from mmengine.config import Config
    fake = _FakeTools()
    monkeypatch.setattr(runs, 'call', fake)
    cfg = Config(dict(train_cfg=dict(max_epochs=2), model=dict(type='A')))
    copied = tmp_path / 'b_seed0'
    copied.mkdir()
    (copied / 'epoch_2.pth').write_bytes(b'')
    rec = runs.run(cfg, str(copied), 0, ['clean'], runs.Launch(), 'b')
    assert fake.calls == ['robustness_eval.py'] and rec['train'] == dict(evals=[], checkpoint_given=True)
    os.remove(copied / 'epoch_2.pth')
    with pytest.raises(SystemExit, match='is gone'):
        runs.run(cfg, str(copied), 0, ['lidar_drop'], runs.Launch(), 'b')


def test_call_reports_the_peak_memory_of_its_own_process(runs, tmp_path):
    import sys
    small = runs.call([sys.executable, '-c', 'pass'], str(tmp_path / 'a.log'))
    big = runs.call([sys.executable, '-c', 'b = bytearray(300 * 2**20); b[::4096] = b"x" * len(b[::4096])'],
                    str(tmp_path / 'b.log'))
    assert big['peak_rss_mb'] > small['peak_rss_mb'] + 250
    with pytest.raises(RuntimeError, match='failed \\(3\\)'):
        runs.call([sys.executable, '-c', 'raise SystemExit(3)'], str(tmp_path / 'c.log'))
