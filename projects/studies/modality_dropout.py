"""Modality-dropout study: what training with a missing sensor buys when a sensor fails.

    python projects/studies/modality_dropout.py --seeds 0 1 2     # 4 models x 3 seeds
    python projects/studies/modality_dropout.py --models aqr aqr-moddrop --seeds 0
    python projects/studies/modality_dropout.py --report-only     # tables from finished runs

MoME (Park et al., CVPR 2025) keeps 48.2 of its 73.6 nuScenes NDS with the LiDAR dropped,
because its experts are trained with whole modalities missing. This study trains CMT and
CMT + AQR without and with the modality masking of CMT's recipe (the `*-moddrop` synthetic
configs: no LiDAR in 25 % of the training samples, all cameras blank in another 25 %), each
with every seed of `--seeds` through `tools/train.py`, then tests every final checkpoint with
`tools/robustness_eval.py` clean, with the LiDAR dropped and with every camera blank (or
the scenarios of `--scenarios`, from `configs/robustness/scenarios.py`). Writes to the
work root:
    <model>_seed<S>/               the training run, its config and robustness/
    modality_dropout_study.md      NDS and mAP (mean +- std over seeds) per model and scenario,
                                   and each model's NDS with the LiDAR dropped over its clean NDS
    modality_dropout_study.json    the same figures and every run's rows
A finished run is reused, so the study resumes; a checkpoint trained elsewhere with the same
config and seed (e.g. by `tools/demo.sh`) is used when copied to `<model>_seed<S>/epoch_<N>.pth`.
"""
import argparse
import json
import os
import os.path as osp

from runs import ROOT, collect_runs, mean_std, train_and_test

_SYNTHETIC = 'configs/synthetic/{}_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'
MODELS = {'cmt': _SYNTHETIC.format('cmt'), 'aqr': _SYNTHETIC.format('cmt-aqr'),
          'cmt-moddrop': _SYNTHETIC.format('cmt-moddrop'), 'aqr-moddrop': _SYNTHETIC.format('cmt-aqr-moddrop')}
SCENARIOS = ['clean', 'lidar_drop', 'camera_all_drop']


def summarise(results: dict, models, scenarios) -> dict:
    """{model: {scenario: {metric: (mean, std)}, 'n': runs, 'lidar_drop_kept': (mean, std)}}
    from {(model, seed): {scenario: row}}; the kept fraction is NDS(lidar_drop) / NDS(clean)
    per run, then averaged."""
    summary = {}
    for m in models:
        runs = [rows for (model, _), rows in sorted(results.items()) if model == m]
        if not runs:
            continue
        stats = {s: {k: mean_std(r[s][k] for r in runs) for k in ('mAP', 'NDS')} for s in scenarios}
        stats['n'] = len(runs)
        if 'clean' in scenarios and 'lidar_drop' in scenarios:
            stats['lidar_drop_kept'] = mean_std(r['lidar_drop']['NDS'] / max(r['clean']['NDS'], 1e-9) for r in runs)
        summary[m] = stats
    return summary


def _pm(mean_std_pair, n: int) -> str:
    mean, std = mean_std_pair
    return f'{mean:.3f} +- {std:.3f}' if n > 1 else f'{mean:.3f}'


def report(results: dict, models, scenarios, seeds, work_root: str) -> str:
    """Markdown tables (NDS, then mAP) and a JSON of the study's figures."""
    summary = summarise(results, models, scenarios)
    kept = 'lidar_drop' in scenarios and 'clean' in scenarios
    lines = [f'Mean +- std over seeds {seeds} (n per model in brackets).', '',
             '| model (n) | ' + ' | '.join(f'NDS {s}' for s in scenarios) +
             (' | NDS lidar_drop / clean |' if kept else ' |'),
             '| --- |' + ' --- |' * (len(scenarios) + kept)]
    for m, stats in summary.items():
        cols = [_pm(stats[s]['NDS'], stats['n']) for s in scenarios]
        if kept:
            cols.append(_pm(stats['lidar_drop_kept'], stats['n']))
        lines.append(f'| {m} ({stats["n"]}) | ' + ' | '.join(cols) + ' |')
    lines += ['', '| model (n) | ' + ' | '.join(f'mAP {s}' for s in scenarios) + ' |',
              '| --- |' + ' --- |' * len(scenarios)]
    for m, stats in summary.items():
        lines.append(f'| {m} ({stats["n"]}) | ' + ' | '.join(_pm(stats[s]['mAP'], stats['n']) for s in scenarios) + ' |')
    table = '\n'.join(lines) + '\n'
    with open(osp.join(work_root, 'modality_dropout_study.md'), 'w') as f:
        f.write(table)
    with open(osp.join(work_root, 'modality_dropout_study.json'), 'w') as f:
        json.dump(dict(summary=summary, seeds=list(seeds), scenarios=list(scenarios),
                       runs={f'{m}_seed{s}': rows for (m, s), rows in results.items()}), f, indent=1)
    print(table, flush=True)
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--scenarios', nargs='+', default=SCENARIOS,
                        help='scenario names of configs/robustness/scenarios.py')
    parser.add_argument('--work-root', default=osp.join(ROOT, 'work_dirs', 'modality_dropout_study'))
    parser.add_argument('--report-only', action='store_true', help='tables from finished runs only')
    args = parser.parse_args(argv)
    from mmengine.config import Config
    os.makedirs(args.work_root, exist_ok=True)

    def run(name, seed, work_dir):
        return train_and_test(Config.fromfile(osp.join(ROOT, MODELS[name])), work_dir, seed, args.scenarios, name)
    collect_runs(args.models, args.seeds, args.work_root, run, args.report_only, args.scenarios,
                 on_each=lambda results: report(results, args.models, args.scenarios, args.seeds, args.work_root))


if __name__ == '__main__':
    main()
