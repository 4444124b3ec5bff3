"""Window-size ablation of AQR's local attention bias, over seeds.

    python projects/studies/window_ablation.py --seeds 0 1 2               # generated data
    python projects/studies/window_ablation.py --windows-m 3 9 15 --seeds 0 1 2
    python projects/studies/window_ablation.py --nuscenes --gpus 8 --windows-m 3 9 15 \
        --train-args --amp                                                           # 8 GPUs, data/nuscenes
    python projects/studies/window_ablation.py --no-baseline --seeds 0 1 2 \
        --configs configs/synthetic/cmt-futr_*-12e_*.py configs/synthetic/cmt-triplane_*-12e_*.py

Trains and evaluates, with the same schedule, the no-bias CMT baseline and the AQR model at
each window (in cells: `--windows`, `aqr_cfg.bias.window_size=W`; or in metres:
`--windows-m`, `aqr_cfg.bias.window_size_m=M`, the same window on any grid), each with
every seed of `--seeds` (`randomness.seed=S`); `--configs` adds whole configs as arms (the
fusion necks, the triplane), trained with the same seeds, schedule and overrides; all
through `tools/train.py` exactly as a user
would, or through `tools/dist_train.sh` with `--gpus N` (torch.distributed: NCCL on GPUs,
gloo on CPU). It writes `<work-dir>/window_ablation.md`: per arm the final mAP / NDS as
mean +- standard deviation over the seeds and per seed, per-class AP (mean over the
0.5/1/2/4 m thresholds and the seeds), the median training-iteration time and the peak
memory (max resident set of the training processes on CPU; mmengine's logged `memory` on
CUDA). Without `--nuscenes` the generated set in data/synthetic_nuscenes is used (created
with tools/create_synthetic_nuscenes.py and tools/create_data.py, as `tools/demo.sh` does),
or the one at `--data-root`. A run whose `<work-dir>/<arm>_seed<S>.json` record exists is
not trained again when its command is the same, so an interrupted study continues where it
stopped.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
from typing import Optional

from runs import ROOT, load_record, mean_std, save_record

CONFIGS = {
    'synthetic': ('configs/synthetic/cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py',
                  'configs/synthetic/cmt-aqr_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'),
    'nuscenes': ('configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py',
                 'configs/aqr/cmt-aqr_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'),
}
PREFIX = 'NuScenes metric/pred_instances_3d_NuScenes/'
CLASSES = ['car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier', 'motorcycle',
           'bicycle', 'pedestrian', 'traffic_cone']


def train_command(config: str, work_dir: str, cfg_options, train_args, gpus: int = 1,
                  launcher: Optional[str] = None, port: int = 29500):
    """(command, environment) of one training run: tools/train.py in one process, or
    tools/dist_train.sh with `gpus` processes (launcher 'pytorch', the default when gpus > 1)."""
    launcher = launcher or ('pytorch' if gpus > 1 else 'none')
    if gpus < 1:
        raise ValueError(f'--gpus must be >= 1, got {gpus}')
    if launcher == 'none' and gpus > 1:
        raise ValueError(f'--gpus {gpus} needs --launcher pytorch (several processes are launched by '
                         'tools/dist_train.sh)')
    options = ['--cfg-options', *cfg_options] if cfg_options else []
    if launcher == 'none':
        return [sys.executable, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work_dir,
                *options, *train_args], dict(os.environ)
    env = dict(os.environ, PORT=str(port), PYTHON=sys.executable)
    return ['bash', osp.join(ROOT, 'tools/dist_train.sh'), config, str(gpus), '--work-dir', work_dir,
            *options, *train_args], env


def train(cmd, env, log_path: str) -> dict:
    """Runs one training command; returns its peak RSS (MB) and wall time."""
    start = time.time()
    with open(log_path, 'w') as log:
        # the child's stderr carries the progress bar; keep it out of the log file
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT if not sys.stderr.isatty() else None)
    if proc.returncode != 0:
        raise RuntimeError(f'training failed ({proc.returncode}): {" ".join(cmd)}; see {log_path}')
    # RUSAGE_CHILDREN is the maximum over the children waited for so far, so every run is
    # started from a fresh helper process (see main) to make it per run
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return dict(peak_rss_mb=peak, wall_s=time.time() - start)


def data_root_options(root: str):
    """--cfg-options pointing every loader and evaluator at the data set `root`."""
    root = root.rstrip('/') + '/'
    return [f'{loader}.dataset.data_root={root}' for loader in ('train_dataloader', 'val_dataloader',
                                                                 'test_dataloader')] + \
        [f'{ev}.data_root={root}' for ev in ('val_evaluator', 'test_evaluator')] + \
        [f'{ev}.ann_file={root}nuscenes_infos_val.pkl' for ev in ('val_evaluator', 'test_evaluator')]


def read_scalars(work_dir: str):
    """(evaluations [(epoch, metrics)], median iteration time, logged CUDA memory or None)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no vis_data/scalars.json under {work_dir}')
    evals, times, memory, epoch = [], [], [], 0
    with open(files[-1]) as f:
        for line in f:
            rec = json.loads(line)
            if PREFIX + 'mAP' in rec:
                evals.append((rec.get('step', epoch), rec))
            elif 'time' in rec:
                times.append(rec['time'])
                epoch = rec.get('epoch', epoch)
                if 'memory' in rec:
                    memory.append(rec['memory'])
    # the first logged iterations include start-up (data workers, allocator warm-up)
    steady = times[len(times) // 5:] or times
    return evals, statistics.median(steady), (max(memory) if memory else None)


def class_ap(rec: dict, name: str) -> float:
    vals = [rec.get(f'{PREFIX}{name}_AP_dist_{d}') for d in ('0.5', '1.0', '2.0', '4.0')]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else float('nan')


def summarise(runs):
    """One row per arm from its runs ({name, seed, evals, iter_s, memory_mb}): the final
    evaluation's mAP / NDS as mean and standard deviation over the seeds, per seed, and the
    per-class AP averaged over the seeds."""
    arms = {}
    for run in runs:
        arms.setdefault(run['name'], []).append(run)
    rows = []
    for name, group in arms.items():
        finals = [r['evals'][-1][1] for r in group]
        row = dict(name=name, seeds=[r['seed'] for r in group],
                   mAP=mean_std(f[PREFIX + 'mAP'] for f in finals), NDS=mean_std(f[PREFIX + 'NDS'] for f in finals),
                   per_seed=[(f[PREFIX + 'mAP'], f[PREFIX + 'NDS']) for f in finals],
                   iter_s=statistics.mean(r['iter_s'] for r in group),
                   memory_mb=max(r['memory_mb'] for r in group),
                   class_ap={c: statistics.mean(class_ap(f, c) for f in finals) for c in CLASSES})
        rows.append(row)
    return rows


def _pm(mean_and_std):
    mean, std = mean_and_std
    return f'{mean:.4f}' if math.isnan(std) else f'{mean:.4f} +- {std:.4f}'


def write_table(runs, path: str, header: str):
    rows = summarise(runs)
    lines = [header, '',
             '| run | seeds | mAP | NDS | mAP / NDS per seed | iteration (s) | peak memory (MB) |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for r in rows:
        per_seed = ', '.join(f'{m:.3f} / {n:.3f}' for m, n in r['per_seed'])
        lines.append(f"| {r['name']} | {' '.join(map(str, r['seeds']))} | {_pm(r['mAP'])} | {_pm(r['NDS'])} | "
                     f"{per_seed} | {r['iter_s']:.2f} | {r['memory_mb']:.0f} |")
    lines += ['', 'Per-class AP at the last evaluation (mean over the 0.5 / 1 / 2 / 4 m thresholds and the seeds):',
              '', '| run | ' + ' | '.join(CLASSES) + ' |', '| --- ' * (1 + len(CLASSES)) + '|']
    for r in rows:
        lines.append(f"| {r['name']} | " + ' | '.join(f"{r['class_ap'][c]:.3f}" for c in CLASSES) + ' |')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines), flush=True)
    return rows


def arms(windows, windows_m, baseline: bool, configs=()):
    """(name, config kind or path, cfg options) per arm: the baseline, the windows in cells
    or in metres (5 / 15 / 25 cells when neither they nor `configs` are given), then each
    of `configs`, named after its file up to the first '_' (e.g. 'cmt-futr')."""
    out = [('CMT (no bias)', 'baseline', [])] if baseline else []
    if not windows and not windows_m and not configs:
        windows = [5, 15, 25]
    out += [(f'AQR window {w}', 'aqr', [f'model.pts_bbox_head.aqr_cfg.bias.window_size={w}'])
            for w in windows or []]
    out += [(f'AQR window {m:g} m', 'aqr', [f'model.pts_bbox_head.aqr_cfg.bias.window_size_m={float(m)}'])
            for m in windows_m or []]
    for config in configs or []:
        if not osp.isfile(osp.join(ROOT, config)):
            raise SystemExit(f'--configs: no config file {config}')
        out.append((osp.basename(config).split('_')[0], config, []))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--windows', type=int, nargs='*', help='window sides in cells (default 5 15 25)')
    p.add_argument('--windows-m', type=float, nargs='*', help='window sides in metres')
    p.add_argument('--seeds', type=int, nargs='+', default=[0], help='one run per arm and seed')
    p.add_argument('--no-baseline', action='store_true', help='skip the no-bias CMT runs')
    p.add_argument('--configs', nargs='*', default=[], help='whole configs as further arms (e.g. a neck)')
    p.add_argument('--nuscenes', action='store_true', help='full configs on data/nuscenes')
    p.add_argument('--data-root', help='the data set of every run (default data/synthetic_nuscenes or '
                   'data/nuscenes, as the configs say)')
    p.add_argument('--gpus', type=int, default=1, help='processes per run (tools/dist_train.sh when > 1)')
    p.add_argument('--launcher', choices=['none', 'pytorch'], help="default: 'pytorch' when --gpus > 1")
    p.add_argument('--port', type=int, default=29500, help='master port of distributed runs')
    p.add_argument('--val-interval', type=int, default=5, help='evaluate every N epochs')
    p.add_argument('--work-dir', default='work_dirs/window_ablation')
    p.add_argument('--cfg-options', nargs='+', default=[], help='extra overrides for every run')
    p.add_argument('--dry-run', action='store_true', help='print the training commands, run nothing')
    p.add_argument('--train-args', nargs=argparse.REMAINDER, default=[],
                   help='passed on to tools/train.py (e.g. --amp); must come last')
    p.add_argument('--child', nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:  # one training run in a fresh process, so its peak RSS is its own
        cmd, env_extra, log = json.loads(args.child[0]), json.loads(args.child[1]), args.child[2]
        print(json.dumps(train(cmd, dict(os.environ, **env_extra), log)))
        return

    kind = 'nuscenes' if args.nuscenes else 'synthetic'
    data = args.data_root or osp.join(ROOT, 'data/nuscenes' if args.nuscenes else 'data/synthetic_nuscenes')
    if not args.dry_run and not osp.exists(osp.join(data, 'nuscenes_infos_train.pkl')):
        sys.exit(f'no info files in {data}: ' + ('run tools/create_data.py on data/nuscenes' if args.nuscenes else
                 'run tools/create_synthetic_nuscenes.py and tools/create_data.py (tools/demo.sh shows how)'))
    baseline, aqr = CONFIGS[kind]
    work_root = osp.join(ROOT, args.work_dir)
    os.makedirs(work_root, exist_ok=True)
    runs = []
    study_arms = arms(args.windows, args.windows_m, not args.no_baseline, args.configs)
    # every arm with one seed before the next seed: a study stopped early has all arms
    for seed in args.seeds:
        for name, which, opts in study_arms:
            config = dict(baseline=baseline, aqr=aqr).get(which, which)
            tag = name.split('(')[0].strip().lower().replace(' ', '_').replace('.', 'p') + f'_seed{seed}'
            work_dir = osp.join(work_root, tag)
            options = (opts + [f'randomness.seed={seed}', f'train_cfg.val_interval={args.val_interval}']
                       + (data_root_options(args.data_root) if args.data_root else []) + args.cfg_options)
            cmd, env = train_command(config, work_dir, options, args.train_args, args.gpus, args.launcher,
                                     args.port)
            print(f'== {name}, seed {seed}: {" ".join(cmd)}', flush=True)
            if args.dry_run:
                continue
            record = osp.join(work_root, f'{tag}.json')
            finished = load_record(record, cmd)
            if finished is not None:   # an earlier invocation trained this very run: a long study resumes
                runs.append(finished)
                print(f'   finished before ({record})', flush=True)
            else:
                runs.append(run_one(cmd, env, work_dir, osp.join(work_root, f'{tag}.log'), name, seed))
                save_record(record, runs[-1])
            write_table(runs, osp.join(work_root, 'window_ablation.md'),
                        f'Window ablation ({kind}; baseline {osp.basename(baseline)}, AQR {osp.basename(aqr)}; '
                        f'seeds {args.seeds}; {args.gpus} process(es) per run; overrides '
                        f'{" ".join(args.cfg_options) or "none"}; other arms {" ".join(args.configs) or "none"})')


def run_one(cmd, env, work_dir: str, log_path: str, name: str, seed: int) -> dict:
    """Trains one run (writing into `work_dir`) in a fresh helper process, so its peak RSS
    is its own, and returns its record: evaluations, iteration time, memory and the command."""
    extra = {k: v for k, v in env.items() if os.environ.get(k) != v}
    out = subprocess.run([sys.executable, __file__, '--child', json.dumps(cmd), json.dumps(extra), log_path],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f'{name}, seed {seed} failed:\n{out.stderr[-3000:]}')
    res = json.loads(out.stdout.strip().splitlines()[-1])
    evals, iter_s, cuda_mem = read_scalars(work_dir)
    print(f'   done in {res["wall_s"] / 60:.1f} min', flush=True)
    return dict(name=name, seed=seed, evals=evals, iter_s=iter_s, cmd=cmd,
                memory_mb=cuda_mem if cuda_mem is not None else res['peak_rss_mb'])


if __name__ == '__main__':
    main()
