"""Draws a trained model's predictions (magenta) over the ground truth (class colours)
in the six cameras and the bird's-eye view, for val samples.

    python tools/analysis/visualize_predictions.py CONFIG CHECKPOINT --indices 0 5 \
        --score-thr 0.3 --out work_dirs/pred_vis
"""
import os
import os.path as osp
import sys

import cv2
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from config_cli import config_parser, load_config  # noqa: E402

from browse_dataset import CAMERA_LAYOUT, build_browse_dataset, render_sample  # noqa: E402


def main():
    p = config_parser(__doc__)
    p.add_argument('checkpoint')
    p.add_argument('--indices', type=int, nargs='+', default=[0])
    p.add_argument('--score-thr', type=float, default=0.3)
    p.add_argument('--out', default='work_dirs/pred_vis')
    args = p.parse_args()
    cfg = load_config(args)
    from mmdet3d.apis import init_model
    from mmdet3d.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    import plugin
    plugin.compat.apply()   # e.g. full loading of the user's own (local) checkpoint
    model = init_model(cfg, args.checkpoint, device='cpu')
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    browse = build_browse_dataset(cfg, 'val')
    cams = cfg.get('camera_names', [n for row in CAMERA_LAYOUT for n in row])
    os.makedirs(args.out, exist_ok=True)
    for idx in args.indices:
        with torch.no_grad():
            pred = model.test_step(pseudo_collate([test_set[idx]]))[0].pred_instances_3d
        keep = pred.scores_3d > args.score_thr
        # the browse view is un-augmented, like the test pipeline's LiDAR frame
        canvas = render_sample(browse[idx], cams, class_names=browse.metainfo['classes'],
                               pred_boxes=pred.bboxes_3d[keep])
        path = osp.join(args.out, f'pred_{idx:04d}.png')
        cv2.imwrite(path, canvas)
        print(f'wrote {path} ({int(keep.sum())} predictions above {args.score_thr})')


if __name__ == '__main__':
    main()
