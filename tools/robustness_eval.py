"""Evaluate a trained detector under sensor failures: one nuScenes test run per scenario.

    python tools/robustness_eval.py CONFIG CHECKPOINT [--work-dir DIR] [--scenarios clean lidar_drop ...]
        [--scenario-file configs/robustness/scenarios.py] [--label NAME] [--cfg-options k=v ...]

Each scenario (see `configs/robustness/scenarios.py`) inserts its failure transforms right
before `Pack3DDetInputs` of the config's test pipeline and runs mmengine's Runner.test()
with the checkpoint, exactly as tools/test.py would; the nuScenes metric is the real
nuscenes-devkit evaluation. Writes to the work dir:
    robustness.md    a markdown table (mAP, NDS, NDS change against `clean`)
    robustness.json  the same figures plus every metric of every scenario
    robustness.png   a bar chart of mAP and NDS per scenario
The configs under configs/synthetic/ point at the generated data set, so this runs on a
laptop; pointed at data/nuscenes it evaluates the real val split.
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
DEFAULT_SCENARIOS = osp.join(REPO, 'configs/robustness/scenarios.py')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir', help='default: work_dirs/robustness/<config name>')
    parser.add_argument('--scenarios', nargs='+', help='names from the scenario file (default: all)')
    parser.add_argument('--scenario-file', default=DEFAULT_SCENARIOS)
    parser.add_argument('--label', help='model name in the table and chart (default: config name)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='as tools/test.py')
    return parser.parse_args(argv)


def insert_before_pack(pipeline: list, transforms: list, config: str) -> list:
    """`pipeline` with `transforms` inserted before its Pack3DDetInputs."""
    types = [step.get('type') for step in pipeline]
    if 'Pack3DDetInputs' not in types:
        raise KeyError(f'{config}: test_dataloader.dataset.pipeline has no Pack3DDetInputs to insert the '
                       f'failure transforms before (types: {types})')
    at = types.index('Pack3DDetInputs')
    return list(pipeline[:at]) + [copy.deepcopy(t) for t in transforms] + list(pipeline[at:])


def scenario_config(cfg, name: str, transforms: list, checkpoint: str, work_dir: str, config: str):
    """A copy of `cfg` that tests `checkpoint` with `transforms` in its test pipeline."""
    cfg = copy.deepcopy(cfg)
    from plugin.datasets.dataset_config import innermost_dataset_cfg
    dataset = innermost_dataset_cfg(cfg.test_dataloader.dataset, 'pipeline')
    dataset.pipeline = insert_before_pack(dataset.pipeline, transforms, config)
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg.work_dir = osp.join(work_dir, name)
    # one process runs several Runners: unique names keep their loggers and visualizers apart
    stamp = time.strftime('%Y%m%d_%H%M%S')
    cfg.experiment_name = f'{name}_{stamp}'
    if cfg.get('visualizer') is not None:
        cfg.visualizer.name = f'visualizer_{name}_{stamp}'
    return cfg


def headline(metrics: dict) -> dict:
    """mAP and NDS out of the evaluator's keys ('NuScenes metric/pred_instances_3d_NuScenes/NDS')."""
    out = {}
    for key, value in metrics.items():
        short = key.rsplit('/', 1)[-1]
        if short in ('mAP', 'NDS'):
            out[short] = float(value)
    if set(out) != {'mAP', 'NDS'}:
        raise KeyError(f'the test evaluator returned no nuScenes mAP / NDS (keys: {sorted(metrics)})')
    return out


def markdown_table(rows: list, label: str) -> str:
    clean = next((r for r in rows if r['scenario'] == 'clean'), None)
    lines = [f'**{label}**', '', '| scenario | failure | mAP | NDS | NDS vs clean |', '| --- | --- | --- | --- | --- |']
    for r in rows:
        change = '' if clean is None or r is clean else f'{r["NDS"] - clean["NDS"]:+.3f}'
        lines.append(f'| {r["scenario"]} | {r["desc"]} | {r["mAP"]:.3f} | {r["NDS"]:.3f} | {change} |')
    return '\n'.join(lines) + '\n'


def bar_chart(rows: list, label: str, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows)), 3.6))
    for offset, key, colour in ((-0.2, 'mAP', '#4c72b0'), (0.2, 'NDS', '#dd8452')):
        bars = ax.bar(x + offset, [r[key] for r in rows], 0.4, label=key, color=colour)
        ax.bar_label(bars, fmt='%.2f', fontsize=7)
    ax.set_xticks(x, [r['scenario'] for r in rows], rotation=30, ha='right')
    ax.set_ylim(0, max(0.05, 1.2 * max(max(r['mAP'], r['NDS']) for r in rows)))
    ax.set_title(f'{label}: nuScenes metrics under sensor failures')
    ax.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    import plugin  # registers the failure transforms
    plugin.compat.apply()
    from mmengine.config import Config
    from mmengine.runner import Runner

    from plugin.engine.config_check import check_config

    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    check_config(cfg)
    scenarios = Config.fromfile(args.scenario_file).scenarios
    names = args.scenarios or list(scenarios)
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        raise KeyError(f'--scenarios {unknown} are not in {args.scenario_file} (known: {list(scenarios)})')
    name = osp.splitext(osp.basename(args.config))[0]
    label = args.label or name
    work_dir = args.work_dir or osp.join('work_dirs', 'robustness', name)
    os.makedirs(work_dir, exist_ok=True)

    rows = []
    for scenario in names:
        spec = scenarios[scenario]
        runner = Runner.from_cfg(scenario_config(cfg, scenario, spec.transforms, args.checkpoint, work_dir,
                                                 args.config))
        metrics = runner.test()
        rows.append(dict(scenario=scenario, desc=spec.desc, **headline(metrics),
                         metrics={k: float(v) for k, v in metrics.items()}))
        print(f'[robustness] {scenario}: mAP {rows[-1]["mAP"]:.4f}  NDS {rows[-1]["NDS"]:.4f}', flush=True)

    table = markdown_table(rows, label)
    with open(osp.join(work_dir, 'robustness.md'), 'w') as f:
        f.write(table)
    with open(osp.join(work_dir, 'robustness.json'), 'w') as f:
        json.dump(dict(label=label, config=args.config, checkpoint=args.checkpoint, rows=rows), f, indent=1)
    bar_chart(rows, label, osp.join(work_dir, 'robustness.png'))
    print(table)
    print(f'written: {work_dir}/robustness.md, robustness.json, robustness.png')
    return rows


if __name__ == '__main__':
    from plugin.engine.config_check import ConfigError
    try:
        main()
    except ConfigError as err:   # a message for the user, not a traceback
        raise SystemExit(f'config error: {err}') from None
