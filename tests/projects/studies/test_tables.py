"""A study's tables: mean and spread over seeds, per seed, per scenario, ratios and chart."""
import json
import math

import pytest

from tests.helpers.repo import load_tool


@pytest.fixture(scope='module')
def tables():
    return load_tool('projects/studies/tables.py')


@pytest.fixture(scope='module')
def studies():
    return load_tool('projects/studies/studies.py')


P = 'NuScenes metric/pred_instances_3d_NuScenes/'


def _trained(arm, seed, m, n, car=0.0):
    metrics = {P + 'mAP': m, P + 'NDS': n, **{f'{P}car_AP_dist_{d}': car for d in ('0.5', '1.0', '2.0', '4.0')}}
    evals = [[5, {P + 'mAP': 0.0, P + 'NDS': 0.0}], [10, metrics]]
    return dict(arm=arm, seed=seed, tests={}, train=dict(evals=evals, iter_s=1.0 + seed, memory_mb=10.0 * (seed + 1)))


def test_training_figures_are_the_last_evaluation_over_seeds(tables):
    rows = tables.training_summary([_trained('a', 1, 0.3, 0.4, car=0.5), _trained('a', 0, 0.1, 0.2, car=0.1),
                                    _trained('b', 0, 0.5, 0.6), dict(arm='c', seed=0, tests={}, train=dict(evals=[]))])
    assert list(rows) == ['a', 'b']                          # a run without an evaluation has no row
    assert rows['a']['seeds'] == [0, 1] and rows['a']['per_seed'] == [(0.1, 0.2), (0.3, 0.4)]
    assert rows['a']['mAP'][0] == pytest.approx(0.2) and rows['a']['mAP'][1] == pytest.approx(math.sqrt(0.02))
    assert rows['a']['iter_s'] == 1.5 and rows['a']['memory_mb'] == 20.0
    assert rows['a']['class_ap']['car'] == pytest.approx(0.3) and math.isnan(rows['a']['class_ap']['bus'])
    assert math.isnan(rows['b']['NDS'][1]) and rows['b']['NDS'][0] == pytest.approx(0.6)
    lines = tables.training_table(rows)
    assert '| a | 0 1 | 0.2000 +- 0.1414 | 0.3000 +- 0.1414 | 0.100 / 0.200, 0.300 / 0.400 | 1.50 | 20 |' in lines
    assert '| b | 0 | 0.5000 | 0.6000 |' in lines[3]


def _tested(arm, seed, clean, drop):
    return dict(arm=arm, seed=seed, train=dict(evals=[]), tests=dict(
        clean=dict(NDS=clean, mAP=clean / 2), lidar_drop=dict(NDS=drop, mAP=0.0),
        camera_all_drop=dict(NDS=clean - 0.01, mAP=0.1)))


def test_scenario_tables_give_mean_spread_and_the_share_kept(tables, studies, tmp_path):
    study = studies.STUDIES['modality_dropout']
    records = [_tested('aqr', 0, 0.30, 0.06), _tested('aqr', 1, 0.26, 0.13), _tested('aqr-moddrop', 0, 0.25, 0.125)]
    text = tables.report('modality_dropout', study, records, str(tmp_path), 'Header.')
    figures = json.load(open(tmp_path / 'modality_dropout.json'))
    summary = figures['scenarios']
    assert summary['aqr']['clean']['NDS'] == pytest.approx([0.28, math.sqrt(2) * 0.02])
    assert summary['aqr']['lidar_drop / clean'][0] == pytest.approx((0.2 + 0.5) / 2)
    assert summary['aqr']['n'] == 2 and 'cmt' not in summary and 'training' not in figures
    assert figures['seeds'] == [0, 1] and len(figures['runs']) == 3
    assert text.startswith('Header.\n')
    assert '| aqr (2) | 0.280 +- 0.028 | 0.095 +- 0.049 | 0.270 +- 0.028 | 0.350 +- 0.212 |' in text
    assert '| aqr-moddrop (1) | 0.250 | 0.125 | 0.240 | 0.500 |' in text
    assert '| aqr (2) | 0.140 +- 0.014 | 0.000 +- 0.000 | 0.100 +- 0.000 |' in text
    assert (tmp_path / 'modality_dropout.md').read_text() == text
    assert not (tmp_path / 'modality_dropout.png').exists()


def test_noise_studies_chart_the_levels_every_run_was_tested_at(tables, studies, tmp_path):
    study = studies.STUDIES['calibration']
    names = list(study.scenarios)

    def run(arm, seed, offset, skip=()):
        return dict(arm=arm, seed=seed, train=dict(evals=[]), tests={
            n: dict(scenario=n, NDS=0.3 - 0.01 * i + offset, mAP=0.1) for i, n in enumerate(names) if n not in skip})
    records = [run('cmt', 0, 0.0), run('cmt', 1, 0.02), run('sparsebev', 0, 0.1, skip=('calib_8deg', 'calib_16deg'))]
    text = tables.report('calibration', study, records, str(tmp_path), 'Header.')
    summary = json.load(open(tmp_path / 'calibration.json'))['scenarios']
    assert summary['cmt']['clean']['NDS'][0] == pytest.approx(0.31)
    assert summary['cmt']['calib_4deg']['NDS'][1] == pytest.approx(math.sqrt(2) * 0.01)
    assert summary['cmt']['n'] == 2 and summary['sparsebev']['n'] == 1
    header = [line for line in text.splitlines() if line.startswith('| arm (n) | NDS')][0]
    assert header.startswith('| arm (n) | NDS clean | NDS calib_0.5deg | NDS calib_1deg | NDS calib_2deg | '
                             'NDS calib_4deg | NDS calib_5cm | NDS calib_20cm | NDS camera_all_drop | '
                             'NDS calib_4deg / clean |')
    assert '8deg' not in header and 'Not every run was tested under calib_8deg, calib_16deg' in text
    assert '| cmt (2) | 0.310 +- 0.014 |' in text and '| sparsebev (1) | 0.400 |' in text
    assert (tmp_path / 'calibration.png').stat().st_size > 10_000
