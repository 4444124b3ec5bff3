"""The browse tool renders cameras with projected boxes and a BEV view."""
import glob
import os.path as osp

import cv2
import numpy as np

from tests.helpers.repo import SYNTHETIC_CONFIG, load_tool, run_tool


def test_render_sample_draws_boxes(synthetic_cfg):
    tool = load_tool('tools/analysis/browse_dataset.py')
    dataset = tool.build_browse_dataset(synthetic_cfg, 'val')
    res = dataset[0]
    names = ['CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT',
             'CAM_BACK_RIGHT']
    canvas = tool.render_sample(res, names, cam_width=400)
    tile_h = round(450 * 400 / 800)
    assert canvas.shape == (2 * tile_h, 3 * 400 + 2 * tile_h, 3)
    empty = dict(res, gt_bboxes_3d=res['gt_bboxes_3d'][[]], gt_labels_3d=res['gt_labels_3d'][:0])
    bare = tool.render_sample(empty, names, cam_width=400)
    # the box overlay changes the pictures in both the camera grid and the BEV panel
    diff = np.abs(canvas.astype(int) - bare.astype(int)).sum(-1) > 0
    assert diff[:, :1200].sum() > 500 and diff[:, 1200:].sum() > 500


def test_browse_cli_writes_png(synthetic_root, tmp_path):
    root = synthetic_root.rstrip('/') + '/'
    run_tool('tools/analysis/browse_dataset.py', SYNTHETIC_CONFIG, '--split', 'train',
             '--indices', '0', '3', '--out', str(tmp_path), '--cfg-options',
             f'train_dataloader.dataset.data_root={root}')
    pngs = sorted(glob.glob(osp.join(tmp_path, '*.png')))
    assert len(pngs) == 2 and cv2.imread(pngs[0]).shape[2] == 3
