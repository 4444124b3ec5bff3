"""Runs a study of `studies.py`: every arm with every seed, trained and evaluated exactly as a
user would, recorded run by run, summarised as mean +- std over the seeds.

    python projects/studies/run_study.py window --seeds 0 1 2            # generated data
    python projects/studies/run_study.py window --arms cmt aqr-3m aqr-9m aqr-15m
    python projects/studies/run_study.py window --nuscenes --gpus 8 --train-args --amp
    python projects/studies/run_study.py modality_dropout --report-only  # tables from finished runs
    python projects/studies/run_study.py calibration --zoom 5 --stride 16 --seeds 0 2
    python projects/studies/run_study.py --list                          # the studies and their arms

Each run is one arm's config with the arm's overrides, `--cfg-options`, the framing of
`--image-size` / `--stride` / `--zoom` and the seed merged in, written to
`<work-root>/<arm>_seed<S>/study_config.py` and trained there with `tools/train.py` (or
`tools/dist_train.sh` with `--gpus N`); a study with scenarios then tests the final
checkpoint with `tools/robustness_eval.py`. Every arm with one seed runs before the next
seed, so a study stopped early has each arm with the same seeds. A finished run is never
repeated, so invoking the same command again continues the study; a run directory holding
another config, seed or launch is refused (`runs.py`). After each run the tables are
rewritten: `<work-root>/<study>.md`, `.json` and, for noise studies, `.png` (`tables.py`).
"""
import argparse
import os
import os.path as osp
import sys

import runs
import tables
from framing import cells_per_degree, feature_stride, framed
from studies import STUDIES, Arm


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('study', nargs='?', choices=list(STUDIES))
    p.add_argument('--list', action='store_true', help='print the studies and their arms')
    p.add_argument('--arms', nargs='+', help="the study's arms to run (default: its default arms, or none "
                   'when --configs is given)')
    p.add_argument('--configs', nargs='+', default=[], help='whole configs as further arms, named after the file')
    p.add_argument('--seeds', nargs='+', type=int, help="one run per arm and seed (default: the study's)")
    p.add_argument('--scenarios', nargs='+', help="scenarios of configs/robustness/scenarios.py to test each "
                   "final checkpoint under (default: the study's)")
    p.add_argument('--nuscenes', action='store_true', help="the study's full configs on data/nuscenes")
    p.add_argument('--data-root', help='the data set of every run (default: what the configs say)')
    p.add_argument('--val-interval', type=int, help="evaluate every N epochs during training (default: the "
                   "study's)")
    p.add_argument('--cfg-options', nargs='+', default=[], help='overrides for every run, KEY=VALUE')
    p.add_argument('--image-size', nargs=2, type=int, metavar=('W', 'H'), help='input size of every run')
    p.add_argument('--stride', type=int, help='stride of the finest image feature map: 4, 8 or 16')
    p.add_argument('--zoom', type=float, help='enlarge every view this many times more than the configs do and '
                   'crop its centre: more feature cells per degree at the same input size and cost')
    p.add_argument('--gpus', type=int, default=1, help='processes per run (tools/dist_train.sh when > 1)')
    p.add_argument('--launcher', choices=['none', 'pytorch'], help="default: 'pytorch' when --gpus > 1")
    p.add_argument('--port', type=int, default=29500, help='master port of distributed runs')
    p.add_argument('--work-root', help='default: work_dirs/studies/<study>')
    p.add_argument('--report-only', action='store_true', help='tables from the finished runs only')
    p.add_argument('--dry-run', action='store_true', help='print each run\'s command and config digest only')
    p.add_argument('--train-args', nargs=argparse.REMAINDER, default=[],
                   help='passed on to tools/train.py (e.g. --amp); must come last')
    args = p.parse_args(argv)
    if not args.list and not args.study:
        p.error('name a study, or --list')
    return args


def study_arms(study, names, configs):
    """The arms to run: `names` of the study, and each of `configs` as an arm named after its
    file up to the first '_' (e.g. 'cmt-futr'); with neither, the study's default arms."""
    if not names and not configs:
        names = study.default_arms if study.default_arms is not None else [a.name for a in study.arms]
    try:
        arms = [study.arm(n) for n in names or ()]
    except KeyError as e:
        raise SystemExit(f'--arms: {e.args[0]}')
    for config in configs:
        if not osp.isfile(osp.join(runs.ROOT, config)):
            raise SystemExit(f'--configs: no config file {config}')
        arms.append(Arm(osp.basename(config).split('_')[0], config))
    if not arms:
        raise SystemExit('no arm to run')
    return arms


def build_config(study, arm: Arm, seed: int, args):
    """The whole config of one run: the arm's config file, its overrides, `--cfg-options`,
    the data root, the evaluation interval, the framing and the seed."""
    from mmengine.config import Config, DictAction
    from plugin.datasets.dataset_config import innermost_dataset_cfg
    data = 'nuscenes' if args.nuscenes else 'synthetic'
    if arm.config in study.configs.get(data, {}):
        path = study.configs[data][arm.config]
    elif osp.isfile(osp.join(runs.ROOT, arm.config)):
        path = arm.config
    else:
        raise SystemExit(f'arm {arm.name}: the study has no {data} config {arm.config!r}'
                         + ('' if data in study.configs else f' (it runs on {", ".join(study.configs)} only)'))
    cfg = Config.fromfile(osp.join(runs.ROOT, path))
    options = argparse.Namespace(options={})   # KEY=VALUE strings parsed as --cfg-options are
    DictAction(option_strings=[], dest='options')(None, options, [*arm.options, *args.cfg_options])
    cfg.merge_from_dict(options.options)
    if args.data_root:
        root = args.data_root.rstrip('/') + '/'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            innermost_dataset_cfg(cfg[loader].dataset, 'data_root').data_root = root
        for evaluator in ('val_evaluator', 'test_evaluator'):
            cfg[evaluator].data_root = root
            cfg[evaluator].ann_file = root + osp.basename(cfg[evaluator].ann_file)
    interval = args.val_interval or study.val_interval
    if interval is not None:
        cfg.train_cfg.val_interval = interval
    framed(cfg, args.image_size, args.stride, args.zoom)
    cfg.merge_from_dict({'randomness.seed': seed})
    return cfg


def check_data(cfg, name: str):
    from plugin.datasets.dataset_config import innermost_dataset_cfg
    dataset = innermost_dataset_cfg(cfg.train_dataloader.dataset, 'data_root')
    infos = osp.join(runs.ROOT, dataset.data_root, dataset.ann_file)
    if not osp.exists(infos):
        raise SystemExit(f'{name}: train_dataloader.dataset.ann_file {infos} does not exist; for the generated '
                         'set run tools/create_synthetic_nuscenes.py and tools/create_data.py (tools/demo.sh '
                         'shows how), for nuScenes tools/create_data.py on data/nuscenes')


def header(name: str, study, arms, args, cfg) -> str:
    seeds = args.seeds or list(study.seeds)
    described = ', '.join(f'{a.name} ({" ".join((a.config, *a.options))})' for a in arms)
    text = (f'Study `{name}`: {study.question} Data: {"nuScenes" if args.nuscenes else "generated"}; seeds '
            f'{seeds}; {args.gpus} process(es) per run; overrides: {" ".join(args.cfg_options) or "none"}; '
            f'arms: {described}.')
    if args.image_size or args.stride or args.zoom or study.noise_axes:
        w, h = cfg.get('image_size', ('?', '?'))
        zoom = f', views enlarged {args.zoom:g}x more than the configs do, centre crop' if args.zoom else ''
        text += f' Input {w}x{h}{zoom}, stride-{feature_stride(cfg)} image maps'
        text += (f': 1 degree moves a projection near the image centre by {cells_per_degree(cfg):.2f} feature '
                 'cells.' if study.noise_axes else '.')
    return text


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        for name, study in STUDIES.items():
            print(f'{name}: {study.question}\n  arms: ' + ', '.join(
                a.name + ('*' if study.default_arms is None or a.name in study.default_arms else '')
                for a in study.arms) + f'  (* default; seeds {list(study.seeds)}; results {study.results})')
        return
    import plugin  # noqa: F401  (the configs' custom imports, for reading the data set)
    study = STUDIES[args.study]
    arms = study_arms(study, args.arms, args.configs)
    seeds = args.seeds or list(study.seeds)
    scenarios = list(args.scenarios if args.scenarios is not None else study.scenarios)
    launch = runs.Launch(args.gpus, args.launcher, args.port, tuple(args.train_args))
    work_root = osp.abspath(args.work_root or osp.join(runs.ROOT, 'work_dirs', 'studies', args.study))
    os.makedirs(work_root, exist_ok=True)
    records, title = [], None
    for seed in seeds:
        for arm in arms:
            cfg = build_config(study, arm, seed, args)
            work_dir = osp.join(work_root, f'{arm.name}_seed{seed}')
            if args.dry_run:
                cmd, _ = launch.command(osp.join(work_dir, 'study_config.py'), work_dir)
                print(f'== {arm.name}, seed {seed} [{runs.signature(cfg, seed, launch)["config_sha1"][:12]}]: '
                      f'{" ".join(cmd)}', flush=True)
                continue
            if args.report_only:
                record = runs.read_record(work_dir)
                if record is None or 'train' not in record:
                    continue
            else:
                check_data(cfg, f'{arm.name} seed {seed}')
                print(f'== {arm.name}, seed {seed}', flush=True)
                record = runs.run(cfg, work_dir, seed, scenarios, launch, arm.name)
            records.append(record)
            title = title or header(args.study, study, arms, args, cfg)
            tables.report(args.study, study, records, work_root, title, scenarios)
    if not args.dry_run and not records:
        raise SystemExit(f'no finished run under {work_root}')


if __name__ == '__main__':
    sys.exit(main())
