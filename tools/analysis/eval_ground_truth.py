"""Scores the val ground truth as predictions through the config's NuScenesMetric.

    python tools/analysis/eval_ground_truth.py configs/_base_/datasets/synthetic-nus-3d-multimodal.py
    python tools/analysis/eval_ground_truth.py CONFIG --shift 1 0 0   # 1 m off: must drop

Expect mAP = NDS = 1.0 without a shift; anything less means a format/coordinate bug.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from config_cli import config_parser, load_config  # noqa: E402

from plugin.evaluation import evaluate_ground_truth  # noqa: E402


def main():
    p = config_parser(__doc__)
    p.add_argument('--shift', type=float, nargs=3, default=[0.0, 0.0, 0.0], metavar=('DX', 'DY', 'DZ'),
                   help='metres added to every box centre (LiDAR frame)')
    args = p.parse_args()
    cfg = load_config(args)
    metrics = evaluate_ground_truth(cfg, args.shift)
    for k in ('mAP', 'NDS'):
        print(f'{k}: {metrics[f"pred_instances_3d_NuScenes/{k}"]:.4f}')


if __name__ == '__main__':
    main()
