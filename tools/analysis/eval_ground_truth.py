"""Scores the val ground truth as predictions through the config's NuScenesMetric.

    python tools/analysis/eval_ground_truth.py configs/_base_/datasets/synthetic-nus-3d-multimodal.py
    python tools/analysis/eval_ground_truth.py CONFIG --shift 1 0 0   # 1 m off: must drop

Expect mAP = NDS = 1.0 without a shift; anything less means a format/coordinate bug.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmengine.config import Config, DictAction  # noqa: E402

from plugin.evaluation import evaluate_ground_truth  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('--shift', type=float, nargs=3, default=[0.0, 0.0, 0.0], metavar=('DX', 'DY', 'DZ'),
                   help='metres added to every box centre (LiDAR frame)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    metrics = evaluate_ground_truth(cfg, args.shift)
    for k in ('mAP', 'NDS'):
        print(f'{k}: {metrics[f"pred_instances_3d_NuScenes/{k}"]:.4f}')


if __name__ == '__main__':
    main()
