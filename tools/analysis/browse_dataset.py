"""Renders samples of a (real or generated) nuScenes data set as PNG pictures.

    python tools/analysis/browse_dataset.py configs/_base_/datasets/synthetic-nus-3d-multimodal.py \
        --split val --indices 0 5 --out work_dirs/browse

For each sample it writes `<token>.png`: the six cameras (front row: FRONT_LEFT, FRONT,
FRONT_RIGHT; back row: BACK_LEFT, BACK, BACK_RIGHT) with the ground-truth boxes
projected through the pipeline's lidar2img (front face in white), beside a bird's-eye
view of the LiDAR points (keyframe + sweeps) and the boxes with their headings. The data
goes through the config's own loading transforms, so the picture shows what a model gets.
"""
import copy
import os
import os.path as osp
import sys

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from config_cli import config_parser, load_config  # noqa: E402
from mmengine.config import Config  # noqa: E402

CAMERA_LAYOUT = (('CAM_FRONT_LEFT', 'CAM_FRONT', 'CAM_FRONT_RIGHT'),
                 ('CAM_BACK_LEFT', 'CAM_BACK', 'CAM_BACK_RIGHT'))
_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
          (0, 4), (1, 5), (2, 6), (3, 7))
_FRONT = (4, 5, 6, 7)  # LiDARInstance3DBoxes.corners: the +x (heading) face
PRED_COLOUR = (255, 0, 255)


def class_colour(label: int) -> tuple:
    hue = np.uint8([[[int(label * 18) % 180, 220, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hue, cv2.COLOR_HSV2BGR)[0, 0])


def draw_camera(img: np.ndarray, corners: np.ndarray, labels: np.ndarray, lidar2img: np.ndarray,
                colour=None, thickness: int = 2):
    """Draws [N, 8, 3] LiDAR-frame box corners into one image (edges behind it skipped).

    colour: one BGR colour for all boxes (predictions); default: per class, front in white.
    """
    hom = np.concatenate([corners, np.ones_like(corners[..., :1])], -1) @ lidar2img.T
    depth = hom[..., 2]
    uv = hom[..., :2] / np.maximum(depth[..., None], 1e-5)
    for box_uv, d, label in zip(uv, depth, labels):
        if (d < 0.5).all():
            continue
        for a, b in _EDGES:
            if d[a] > 0.5 and d[b] > 0.5:
                c = colour or ((255, 255, 255) if a in _FRONT and b in _FRONT else class_colour(label))
                cv2.line(img, tuple(np.round(box_uv[a]).astype(int)),
                         tuple(np.round(box_uv[b]).astype(int)), c, thickness, cv2.LINE_AA)
    return img


def draw_bev(points: np.ndarray, corners: np.ndarray, labels: np.ndarray, extent: float,
             size: int, pred_corners: np.ndarray = None) -> np.ndarray:
    """Top view (x up, y left) of points and box footprints, `extent` metres each side;
    predictions (optional) in magenta over the class-coloured ground truth."""
    img = np.full((size, size, 3), 20, np.uint8)
    scale = size / (2 * extent)

    def to_px(xy):
        return np.stack([size / 2 - xy[..., 1] * scale, size / 2 - xy[..., 0] * scale], -1)

    px = np.round(to_px(points[:, :2])).astype(int)
    ok = (px >= 0).all(1) & (px < size).all(1)
    shade = np.clip(140 + points[ok, 2] * 50, 90, 255).astype(np.uint8)  # brighter = higher
    img[px[ok, 1], px[ok, 0]] = np.stack([shade] * 3, -1)
    for box, label in zip(corners, labels):
        foot = to_px(box[[0, 3, 7, 4], :2])
        cv2.polylines(img, [np.round(foot * 16).astype(np.int32)], True, class_colour(label),
                      2, cv2.LINE_AA, shift=4)
        centre, front = box[:, :2].mean(0), box[list(_FRONT), :2].mean(0)
        cv2.line(img, tuple(np.round(to_px(centre)).astype(int)),
                 tuple(np.round(to_px(front)).astype(int)), (255, 255, 255), 1, cv2.LINE_AA)
    for box in (pred_corners if pred_corners is not None else []):
        foot = to_px(box[[0, 3, 7, 4], :2])
        cv2.polylines(img, [np.round(foot * 16).astype(np.int32)], True, PRED_COLOUR, 1, cv2.LINE_AA, shift=4)
    cv2.circle(img, (size // 2, size // 2), 4, (0, 0, 255), -1)  # the LiDAR
    return img


def render_sample(results: dict, cam_names, cam_width: int = 480, bev_extent: float = 55.0,
                  class_names=None, pred_boxes=None) -> np.ndarray:
    """One picture of a pipeline output (points, img list, lidar2img, gt boxes), with
    optional predicted boxes (LiDARInstance3DBoxes in the same frame) in magenta."""
    boxes = results['gt_bboxes_3d']
    corners = boxes.corners.numpy() if len(boxes) else np.zeros((0, 8, 3))
    labels = np.asarray(results['gt_labels_3d'])
    pred = pred_boxes.corners.numpy() if pred_boxes is not None and len(pred_boxes) else None
    views = {}
    for i, name in enumerate(cam_names):
        img = np.clip(results['img'][i], 0, 255).astype(np.uint8).copy()
        img = draw_camera(img, corners, labels, np.asarray(results['lidar2img'][i]))
        if pred is not None:
            img = draw_camera(img, pred, np.zeros(len(pred)), np.asarray(results['lidar2img'][i]),
                              colour=PRED_COLOUR, thickness=1)
        h = int(round(img.shape[0] * cam_width / img.shape[1]))
        img = cv2.resize(img, (cam_width, h), interpolation=cv2.INTER_AREA)
        cv2.putText(img, name, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
        views[name] = img
    h = next(iter(views.values())).shape[0]
    blank = np.zeros((h, cam_width, 3), np.uint8)
    grid = np.vstack([np.hstack([views.get(n, blank) for n in row]) for row in CAMERA_LAYOUT])
    bev = draw_bev(results['points'].tensor.numpy(), corners, labels, bev_extent, grid.shape[0], pred)
    canvas = np.hstack([grid, bev])
    if class_names is not None:  # legend
        for i, name in enumerate(class_names):
            cv2.putText(canvas, name, (grid.shape[1] + 8, 20 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, class_colour(i), 1, cv2.LINE_AA)
    return canvas


def build_browse_dataset(cfg: Config, split: str):
    """The split's dataset with the config's loading steps and GT annotations."""
    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    loader = cfg.train_dataloader if split == 'train' else cfg.test_dataloader
    from plugin.datasets.dataset_config import innermost_dataset_cfg
    ds_cfg = copy.deepcopy(innermost_dataset_cfg(loader.dataset, 'pipeline'))
    loads = [t for t in ds_cfg.pipeline if t['type'].startswith('Load') and 'Annotations' not in t['type']]
    for t in loads:
        t.pop('test_mode', None)
    ds_cfg.update(test_mode=False, filter_empty_gt=False, pipeline=loads + [
        dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
        dict(type='ComputeLidar2Img')])
    return DATASETS.build(ds_cfg)


def main():
    p = config_parser(__doc__)
    p.add_argument('--split', choices=['train', 'val'], default='val')
    p.add_argument('--indices', type=int, nargs='+', default=[0])
    p.add_argument('--out', default='work_dirs/browse')
    p.add_argument('--cam-width', type=int, default=480, help='width of each camera tile (px)')
    args = p.parse_args()
    cfg = load_config(args)
    dataset = build_browse_dataset(cfg, args.split)
    cam_names = cfg.get('camera_names', [n for row in CAMERA_LAYOUT for n in row])
    os.makedirs(args.out, exist_ok=True)
    for idx in args.indices:
        if not 0 <= idx < len(dataset):
            sys.exit(f'error: --indices {idx} is outside the {args.split} set (0..{len(dataset) - 1})')
        results = dataset[idx]
        canvas = render_sample(results, cam_names, args.cam_width,
                               class_names=dataset.metainfo['classes'])
        path = osp.join(args.out, f'{args.split}_{idx:04d}_{results["token"]}.png')
        cv2.imwrite(path, canvas)
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
