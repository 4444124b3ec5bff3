"""Generates a small data set in the exact nuScenes on-disk format.

    python tools/create_synthetic_nuscenes.py --out data/synthetic_nuscenes \
        --num-scenes 10 --samples-per-scene 10 --seed 0

The result is read unchanged by nuscenes-devkit, mmdet3d's converter
(`tools/create_data.py nuscenes`) and NuScenesMetric. See plugin/synthetic/.
"""
import argparse
import os.path as osp
import shutil
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from plugin.synthetic.nuscenes_generator import GeneratorConfig, generate_dataset  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='data/synthetic_nuscenes', help='data root to write')
    p.add_argument('--version', default='v1.0-mini', choices=['v1.0-mini', 'v1.0-trainval'])
    p.add_argument('--num-scenes', type=int, default=10)
    p.add_argument('--samples-per-scene', type=int, default=10)
    p.add_argument('--val-samples-per-scene', type=int, default=None,
                   help='samples of each val scene (default: --samples-per-scene); a longer val split '
                        'ranks models with less noise without lengthening the training epochs')
    p.add_argument('--sweeps-per-sample', type=int, default=9,
                   help='LiDAR sweeps between keyframes (9 = nuScenes 20 Hz)')
    p.add_argument('--image-size', type=int, nargs=2, default=[1600, 900], metavar=('W', 'H'))
    p.add_argument('--min-objects', type=int, default=5)
    p.add_argument('--max-objects', type=int, default=40)
    p.add_argument('--lidar-azimuth-steps', type=int, default=1084)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--overwrite', action='store_true', help='replace an existing data set')
    args = p.parse_args(argv)

    def bad(flag, msg):
        p.error(f'{flag}: {msg}')
    if args.num_scenes < 2:
        bad('--num-scenes', f'{args.num_scenes} < 2: a train and a val scene are needed')
    if not 1 <= args.samples_per_scene <= 400:
        bad('--samples-per-scene', f'{args.samples_per_scene} is outside 1..400')
    if args.val_samples_per_scene is not None and not 1 <= args.val_samples_per_scene <= 400:
        bad('--val-samples-per-scene', f'{args.val_samples_per_scene} is outside 1..400')
    if not 0 <= args.sweeps_per_sample <= 9:
        bad('--sweeps-per-sample', f'{args.sweeps_per_sample} is outside 0..9')
    w, h = args.image_size
    if not (64 <= w <= 4096 and 64 <= h <= 4096):
        bad('--image-size', f'{w}x{h} is outside 64..4096 pixels')
    if not 0 <= args.min_objects <= args.max_objects <= 200:
        bad('--min-objects/--max-objects', f'need 0 <= {args.min_objects} <= {args.max_objects} <= 200')
    if args.lidar_azimuth_steps < 90:
        bad('--lidar-azimuth-steps', f'{args.lidar_azimuth_steps} < 90')
    if args.workers < 1:
        bad('--workers', f'{args.workers} < 1')
    if osp.exists(args.out) and not osp.isdir(args.out):
        bad('--out', f'{args.out} exists and is not a directory')
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = GeneratorConfig(root=args.out, version=args.version, num_scenes=args.num_scenes,
                          samples_per_scene=args.samples_per_scene,
                          val_samples_per_scene=args.val_samples_per_scene,
                          sweeps_per_sample=args.sweeps_per_sample,
                          image_size=tuple(args.image_size),
                          objects_per_sample=(args.min_objects, args.max_objects),
                          lidar_azimuth_steps=args.lidar_azimuth_steps, seed=args.seed,
                          workers=args.workers)
    if osp.isdir(osp.join(args.out, args.version)):
        if not args.overwrite:
            sys.exit(f'error: {osp.join(args.out, args.version)} already exists; '
                     'pass --overwrite to replace it')
        for sub in ('samples', 'sweeps', 'maps', args.version):
            shutil.rmtree(osp.join(args.out, sub), ignore_errors=True)
    t0 = time.time()
    val = '' if args.val_samples_per_scene is None else f' ({args.val_samples_per_scene} per val scene)'
    print(f'Generating {args.num_scenes} scenes x {args.samples_per_scene} samples{val} '
          f'({args.version}, seed {args.seed}) into {args.out}')
    try:
        sizes = generate_dataset(cfg)
    except ValueError as e:
        sys.exit(f'error: {e}')
    print('tables: ' + ', '.join(f'{k}={v}' for k, v in sizes.items()))
    print(f'done in {time.time() - t0:.1f}s')


if __name__ == '__main__':
    main()
