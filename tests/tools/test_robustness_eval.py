"""tools/robustness_eval.py: scenarios land in the test pipeline; a run writes the table,
the JSON and the chart from real nuScenes evaluations."""
import json
import os.path as osp

import pytest

import plugin  # noqa: F401
from tests.helpers.repo import load_tool
from tests.helpers.tiny_cmt import CONFIG, save_tiny_checkpoint, tiny_options

robustness_eval = load_tool('tools/robustness_eval.py')


def test_every_scenario_inserts_its_transforms_before_pack():
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    scenarios = Config.fromfile(robustness_eval.DEFAULT_SCENARIOS).scenarios
    assert {'clean', 'lidar_drop', 'lidar_4beam', 'lidar_fov', 'camera_front_drop', 'camera_all_drop', 'occlusion',
            'calibration_noise'} <= set(scenarios)
    base = [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
    for name, spec in scenarios.items():
        out = robustness_eval.scenario_config(cfg, name, spec.transforms, 'ckpt.pth', '/tmp/w', CONFIG)
        types = [t['type'] for t in out.test_dataloader.dataset.pipeline]
        added = [t['type'] for t in spec.transforms]
        assert types == base[:-1] + added + base[-1:], name
        assert out.load_from == 'ckpt.pth' and out.work_dir == f'/tmp/w/{name}'
    # the base config is untouched
    assert [t['type'] for t in cfg.test_dataloader.dataset.pipeline] == base


def test_markdown_table_reports_the_change_against_clean():
    rows = [dict(scenario='clean', desc='no failure', mAP=0.5, NDS=0.6),
            dict(scenario='lidar_drop', desc='no points', mAP=0.1, NDS=0.25)]
    table = robustness_eval.markdown_table(rows, 'model')
    assert '| clean | no failure | 0.500 | 0.600 |  |' in table
    assert '| lidar_drop | no points | 0.100 | 0.250 | -0.350 |' in table


def test_runs_scenarios_and_writes_table_json_and_chart(synthetic_root, tmp_path):
    ckpt = save_tiny_checkpoint(synthetic_root, str(tmp_path / 'init.pth'))
    work = str(tmp_path / 'robust')
    rows = robustness_eval.main([CONFIG, ckpt, '--work-dir', work, '--scenarios', 'clean', 'camera_all_drop',
                                 '--label', 'tiny', '--cfg-options', *tiny_options(synthetic_root)])
    assert [r['scenario'] for r in rows] == ['clean', 'camera_all_drop']
    saved = json.load(open(osp.join(work, 'robustness.json')))
    assert saved['label'] == 'tiny' and len(saved['rows']) == 2
    for row in saved['rows']:
        assert 0 <= row['mAP'] <= 1 and 0 <= row['NDS'] <= 1
        assert row['NDS'] == pytest.approx(
            next(v for k, v in row['metrics'].items() if k.endswith('/NDS')))
    table = open(osp.join(work, 'robustness.md')).read()
    assert table.count('\n| ') == 4 and '| camera_all_drop | all cameras blank |' in table
    assert osp.getsize(osp.join(work, 'robustness.png')) > 10_000
    # each scenario tested in its own work dir, with the checkpoint given
    assert osp.isdir(osp.join(work, 'clean')) and osp.isdir(osp.join(work, 'camera_all_drop'))


def test_unknown_scenario_is_named(tmp_path):
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(KeyError, match=r"\['lidar_dorp'\] are not in"):
        robustness_eval.main([CONFIG, str(ckpt), '--scenarios', 'lidar_dorp', '--work-dir', str(tmp_path)])
