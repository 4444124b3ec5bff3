"""Pictures of AQR's weights and local attention-bias windows for one sample.

    python tools/analysis/visualize_attn_bias.py CONFIG [CHECKPOINT] --index 0 \
        --out work_dirs/attn_bias_vis/aqr_0000.png

Runs the (AQR) model on one test sample and draws: the queries' reference points on the
BEV coloured by their LiDAR weight and by their camera weight; for a few queries (the
largest |weight|, or `--queries`), their bias windows on the BEV grid and in the camera
that sees them; and histograms of both weights. The weights and windows are read with
forward hooks on `pts_bbox_head.aqr` and `pts_bbox_head.attn_bias_generator`, so the
picture shows exactly what the decoder used. Without a checkpoint the AQR is at its
initialisation (all weights 0).
"""
import os
import os.path as osp
import sys

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from config_cli import config_parser, load_config  # noqa: E402


def run_model(cfg, checkpoint, index):
    """(AQRWeights, LocalWindowBias, reference points [Q, 3] in metres, sample, metas)."""
    from mmdet3d.apis import init_model
    from mmdet3d.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    import plugin
    plugin.compat.apply()   # e.g. full loading of the user's own (local) checkpoint
    from plugin.models.utils import denormalize_points
    model = init_model(cfg, checkpoint, device='cpu')
    if checkpoint is None:
        model.init_weights()        # the AQR's zero-initialised weight head, CMT's reference points
    head = model.pts_bbox_head
    if getattr(head, 'aqr', None) is None:
        raise SystemExit(f'{cfg.filename}: model.pts_bbox_head has no aqr_cfg; use an AQR config')
    captured = {}
    # the AQR's first input is the queries' reference points (learned or heatmap peaks)
    head.aqr.register_forward_hook(lambda m, args, out: captured.update(weights=out, ref=args[0]))
    head.attn_bias_generator.register_forward_hook(lambda m, args, out: captured.__setitem__('bias', out))
    sample = DATASETS.build(cfg.test_dataloader.dataset)[index]
    with torch.no_grad():
        result = model.test_step(pseudo_collate([sample]))[0]
    ref = denormalize_points(captured['ref'][0, -head.num_query:].detach(), head.pc_range)
    return captured['weights'], captured['bias'], ref.numpy(), sample, result.metainfo


def draw(weights, bias, ref, sample, metas, pc_range, queries, out_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    lw = weights.lidar_weight[0].numpy()
    cw = weights.camera_weight[0].numpy()
    n = len(ref)                            # the object queries (no DN at test time)
    lw, cw = lw[-n:], cw[-n:]
    if not queries:
        queries = list(np.argsort(-(np.abs(lw) + np.abs(cw)))[:3])
    imgs = sample['inputs']['img'].numpy() if torch.is_tensor(sample['inputs']['img']) else np.asarray(sample['inputs']['img'])
    num_views = imgs.shape[0]
    fig = plt.figure(figsize=(18, 10 + 3 * ((num_views + 2) // 3)))
    grid = fig.add_gridspec(2 + (num_views + 2) // 3, 3)
    colours = plt.cm.tab10(np.arange(len(queries)) % 10)
    (x0, y0, _, x1, y1, _) = pc_range[:6]
    for col, (values, name) in enumerate([(lw, 'LiDAR weight'), (cw, 'camera weight')]):
        ax = fig.add_subplot(grid[0:2, col])
        sc = ax.scatter(ref[:, 0], ref[:, 1], c=values, cmap='coolwarm', vmin=-1, vmax=1, s=12)
        fig.colorbar(sc, ax=ax, fraction=0.046)
        if bias.bev_shape is not None and col == 0:
            h, w = bias.bev_shape
            cell_x, cell_y = (x1 - x0) / w, (y1 - y0) / h
            for c, q in zip(colours, queries):
                r, cc = weights.bev_center[0, -n + q].tolist()
                half = bias.bev_window // 2
                top, left = max(r - half, 0), max(cc - half, 0)
                bottom, right = min(r + half + 1, h), min(cc + half + 1, w)
                ax.add_patch(Rectangle((x0 + left * cell_x, y0 + top * cell_y), (right - left) * cell_x,
                                       (bottom - top) * cell_y, fill=False, edgecolor=c, linewidth=2))
                ax.plot(ref[q, 0], ref[q, 1], 'x', color=c, markersize=10)
        ax.set_xlim(x0, x1), ax.set_ylim(y0, y1), ax.set_aspect('equal')
        ax.set_title(f'queries coloured by {name}' + (f' ({bias.bev_window}x{bias.bev_window} BEV windows)'
                                                       if col == 0 else ''))
        ax.set_xlabel('x (m)'), ax.set_ylabel('y (m)')
    for i, (values, name) in enumerate([(lw, 'LiDAR weight'), (cw, 'camera weight')]):
        ax = fig.add_subplot(grid[i, 2])
        ax.hist(values, bins=40, range=(-1, 1), color='tab:blue' if i == 0 else 'tab:orange')
        ax.set_title(f'{name}: mean {values.mean():+.3f}, std {values.std():.3f}')
    pad_h, pad_w = metas.get('input_shape', metas.get('pad_shape', imgs.shape[-2:]))[:2]
    for v in range(num_views):
        ax = fig.add_subplot(grid[2 + v // 3, v % 3])
        img = imgs[v].transpose(1, 2, 0)[..., ::-1]          # BGR (mmcv's loader) -> RGB
        ax.imshow(np.clip(img / 255.0, 0, 1))
        if bias.cam_shape is not None:
            _, fh, fw = bias.cam_shape
            sy, sx = pad_h / fh, pad_w / fw
            for c, q in zip(colours, queries):
                view, r, cc = weights.cam_center[0, -n + q].tolist()
                if view != v:
                    continue
                half = bias.cam_window // 2     # the window clipped to the map, as the bias is
                top, left = max(r - half, 0), max(cc - half, 0)
                bottom, right = min(r + half + 1, fh), min(cc + half + 1, fw)
                ax.add_patch(Rectangle((left * sx, top * sy), (right - left) * sx, (bottom - top) * sy,
                                       fill=False, edgecolor=c, linewidth=2))
                ax.plot((cc + 0.5) * sx, (r + 0.5) * sy, 'x', color=c, markersize=10)
        ax.set_xlim(0, img.shape[1]), ax.set_ylim(img.shape[0], 0)
        ax.set_title(f'view {v}' + (f' ({bias.cam_window}x{bias.cam_window} camera windows)' if v == 0 else ''))
        ax.axis('off')
    fig.suptitle('AQR: ' + ', '.join(f'query {q}: LiDAR {lw[q]:+.2f} / camera {cw[q]:+.2f}'
                                     for q in queries))
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=80)
    plt.close(fig)


def main():
    p = config_parser(__doc__)
    p.add_argument('checkpoint', nargs='?', default=None)
    p.add_argument('--index', type=int, default=0, help='test-set sample')
    p.add_argument('--queries', type=int, nargs='*', default=None, help='object queries to draw windows for')
    p.add_argument('--out', default='work_dirs/attn_bias_vis/aqr.png')
    args = p.parse_args()
    cfg = load_config(args)
    weights, bias, ref, sample, metas = run_model(cfg, args.checkpoint, args.index)
    draw(weights, bias, ref, sample, metas, cfg.model.pts_bbox_head.pc_range, args.queries, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
