"""Window-size ablation of AQR's local attention bias.

    python projects/window_ablation/run_window_ablation.py                 # generated data
    python projects/window_ablation/run_window_ablation.py --windows 15    # one window + baseline
    python projects/window_ablation/run_window_ablation.py --nuscenes      # full configs, data/nuscenes

Trains and evaluates, with the same schedule and seed, the no-bias CMT baseline and the
AQR model at each window size (`--cfg-options model.pts_bbox_head.attn_bias_cfg.window_size=W`
on one config), through `tools/train.py` exactly as a user would, and writes a markdown
table (`<work-dir>/window_ablation.md`): mAP / NDS at every evaluation (to see whether the
locality prior converges faster), per-class AP (mean over the 0.5/1/2/4 m thresholds), the
median training-iteration time and the peak memory (max resident set of the training
process on CPU; mmengine's logged `memory` on CUDA). Without `--nuscenes` the generated set
in data/synthetic_nuscenes is used (created with tools/create_synthetic_nuscenes.py and
tools/create_data.py, as `tools/demo.sh` does).
"""
import argparse
import glob
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'synthetic': ('configs/synthetic/cmt_pillar080_r18-256x144_1xb2-10e_synthetic-nus-3d.py',
                  'configs/synthetic/cmt-aqr_pillar080_r18-256x144_1xb2-10e_synthetic-nus-3d.py'),
    'nuscenes': ('configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py',
                 'configs/aqr/cmt-aqr_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'),
}
PREFIX = 'NuScenes metric/pred_instances_3d_NuScenes/'
CLASSES = ['car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier', 'motorcycle',
           'bicycle', 'pedestrian', 'traffic_cone']


def train(config: str, work_dir: str, cfg_options, launcher_args, log_path: str) -> dict:
    """Runs tools/train.py in a child process; returns its peak RSS (MB) and wall time."""
    cmd = [sys.executable, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work_dir]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    cmd += launcher_args
    start = time.time()
    with open(log_path, 'w') as log:
        # the child's stderr carries the progress bar; keep it out of the log file
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT if not sys.stderr.isatty()
                              else None)
    if proc.returncode != 0:
        raise RuntimeError(f'training failed ({proc.returncode}): {" ".join(cmd)}; see {log_path}')
    # RUSAGE_CHILDREN is the maximum over the children waited for so far, so every run is
    # started from a fresh helper process (see main) to make it per run
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return dict(peak_rss_mb=peak, wall_s=time.time() - start)


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


def write_table(rows, path: str, header: str):
    evals_epochs = sorted({e for r in rows for e, _ in r['evals']})
    lines = [header, '',
             '| run | ' + ' | '.join(f'mAP@{e}' for e in evals_epochs) + ' | '
             + ' | '.join(f'NDS@{e}' for e in evals_epochs) + ' | iteration (s) | peak memory (MB) |',
             '| --- ' * (3 + 2 * len(evals_epochs)) + '|']
    for r in rows:
        by_epoch = dict(r['evals'])
        maps = [f"{by_epoch[e][PREFIX + 'mAP']:.4f}" if e in by_epoch else '-' for e in evals_epochs]
        ndss = [f"{by_epoch[e][PREFIX + 'NDS']:.4f}" if e in by_epoch else '-' for e in evals_epochs]
        lines.append(f"| {r['name']} | {' | '.join(maps)} | {' | '.join(ndss)} | {r['iter_s']:.2f} | "
                     f"{r['memory_mb']:.0f} |")
    lines += ['', 'Per-class AP at the last evaluation (mean over the 0.5 / 1 / 2 / 4 m thresholds):', '',
              '| run | ' + ' | '.join(CLASSES) + ' |', '| --- ' * (1 + len(CLASSES)) + '|']
    for r in rows:
        last = r['evals'][-1][1]
        lines.append(f"| {r['name']} | " + ' | '.join(f'{class_ap(last, c):.3f}' for c in CLASSES) + ' |')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--windows', type=int, nargs='+', default=[5, 15, 25])
    p.add_argument('--no-baseline', action='store_true', help='skip the no-bias CMT run')
    p.add_argument('--nuscenes', action='store_true', help='full configs on data/nuscenes')
    p.add_argument('--val-interval', type=int, default=5, help='evaluate every N epochs')
    p.add_argument('--work-dir', default='work_dirs/window_ablation')
    p.add_argument('--cfg-options', nargs='+', default=[], help='extra overrides for every run')
    p.add_argument('--launcher-args', nargs=argparse.REMAINDER, default=[],
                   help='passed on to tools/train.py (e.g. --amp)')
    p.add_argument('--child', nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:  # one training run in a fresh process, so its peak RSS is its own
        config, work_dir, log, opts = args.child
        res = train(config, work_dir, json.loads(opts), args.launcher_args, log)
        print(json.dumps(res))
        return

    kind = 'nuscenes' if args.nuscenes else 'synthetic'
    if kind == 'nuscenes' and not osp.isdir(osp.join(ROOT, 'data/nuscenes')):
        sys.exit('--nuscenes needs data/nuscenes with info files from tools/create_data.py')
    if kind == 'synthetic' and not osp.exists(osp.join(ROOT, 'data/synthetic_nuscenes/nuscenes_infos_train.pkl')):
        sys.exit('no generated data: run tools/create_synthetic_nuscenes.py and tools/create_data.py '
                 '(tools/demo.sh shows how), or pass --nuscenes')
    baseline, aqr = CONFIGS[kind]
    runs = [] if args.no_baseline else [('CMT (no bias)', baseline, [])]
    runs += [(f'AQR window {w}', aqr, [f'model.pts_bbox_head.attn_bias_cfg.window_size={w}']) for w in args.windows]
    work_root = osp.join(ROOT, args.work_dir)
    os.makedirs(work_root, exist_ok=True)
    rows = []
    for name, config, opts in runs:
        tag = name.split('(')[0].strip().lower().replace(' ', '_')
        work_dir = osp.join(work_root, tag)
        opts = opts + [f'train_cfg.val_interval={args.val_interval}'] + args.cfg_options
        print(f'== {name}: {config} {" ".join(opts)}', flush=True)
        out = subprocess.run([sys.executable, __file__, '--child', config, work_dir, osp.join(work_root, f'{tag}.log'),
                              json.dumps(opts), '--launcher-args', *args.launcher_args],
                             cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f'{name} failed:\n{out.stderr[-3000:]}')
        res = json.loads(out.stdout.strip().splitlines()[-1])
        evals, iter_s, cuda_mem = read_scalars(work_dir)
        rows.append(dict(name=name, evals=evals, iter_s=iter_s,
                         memory_mb=cuda_mem if cuda_mem is not None else res['peak_rss_mb']))
        print(f'   done in {res["wall_s"] / 60:.1f} min', flush=True)
        write_table(rows, osp.join(work_root, 'window_ablation.md'),
                    f'Window ablation ({kind}; baseline {osp.basename(baseline)}, AQR {osp.basename(aqr)}; '
                    f'overrides {" ".join(args.cfg_options) or "none"})')


if __name__ == '__main__':
    main()
