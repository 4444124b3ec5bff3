"""How well a trained `ImageCentreHead` sees the objects on the val set: centre recall and
depth error of the dense image head (model.img_centre_head).

    python tools/analysis/image_centre_eval.py CONFIG CHECKPOINT [--top-k 100] [--out FILE.json]

Per val sample, the targets come from its ground-truth boxes through the test pipeline's
calibration (`ImageCentreHead.targets`); then
* `recall`: the fraction of centres (one per box and view that sees it) with one of the
  sample's `--top-k` heatmap peaks (over all views and classes, `ImageCentreHead.peaks`)
  of the same class in the same view within one feature cell (Chebyshev distance);
  `recall_any_class` ignores the class;
* `depth_abs_rel`: mean |d_pred - d| / d of the predicted depth at each centre's cell;
* with camera queries (`pts_bbox_head.query_generator` a `CameraPeakQueries`, or one in a
  `CompositeQueries`): `query_coverage_{0.5,1,2,4}m`, the fraction of ground-truth boxes with
  a camera query's reference point (the lifted peak, before decoding) within that BEV
  distance of the box centre: the nuScenes matching thresholds, so the share of objects a
  query starts close enough to for a match without moving.
"""
import json
import os.path as osp
import sys
from typing import Dict

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from config_cli import config_parser, load_config  # noqa: E402


def centre_metrics(outs: Dict[str, torch.Tensor], targets, head, top_k: int) -> Dict[str, float]:
    """Sums over one batch: centres, centres recalled (class-aware / any class) and the
    summed relative depth error (see the module docstring)."""
    scores, labels, where = head.peaks(outs['heatmap'], top_k)                  # [B, k], [B, k], [B, k, 3]
    found = found_any = 0
    t = targets
    for b, view, row, col in t.mask.nonzero().tolist():
        classes = t.heatmap[b, view, :, row, col].eq(1).nonzero().flatten().tolist()
        near = ((where[b, :, 0] == view) & ((where[b, :, 1] - row).abs() <= 1)
                & ((where[b, :, 2] - col).abs() <= 1))
        found_any += int(near.any())
        found += int(any((near & (labels[b] == c)).any() for c in classes))
    depth = outs['log_depth'].exp()[t.mask]
    rel = ((depth - t.depth[t.mask]).abs() / t.depth[t.mask]).sum()
    return dict(centres=int(t.mask.sum()), found=found, found_any=found_any, rel_sum=float(rel))


COVERAGE_M = (0.5, 1.0, 2.0, 4.0)


def camera_query_generator(model):
    """The model's `CameraPeakQueries` (alone or in a composite), or None."""
    gen = getattr(model.pts_bbox_head, 'query_generator', None)
    for g in (getattr(gen, 'generators', None) or [gen]):
        if type(g).__name__ == 'CameraPeakQueries':
            return g
    return None


def query_coverage(ref: torch.Tensor, boxes, pc_range) -> Dict[str, float]:
    """Counts over one batch: boxes, and boxes with a reference point of ref [B, N, 3]
    (normalised) within each of COVERAGE_M metres (BEV) of their centre."""
    from plugin.models.utils.projection import denormalize_points
    out = dict(boxes=0, **{f'covered_{m}': 0 for m in COVERAGE_M})
    for b, gt in enumerate(boxes):
        if len(gt) == 0:
            continue
        xy = denormalize_points(ref[b].float(), pc_range)[:, :2]
        dist = torch.cdist(gt[:, :2].float(), xy).min(1).values
        out['boxes'] += len(gt)
        for m in COVERAGE_M:
            out[f'covered_{m}'] += int((dist <= m).sum())
    return out


def main():
    p = config_parser(__doc__)
    p.add_argument('checkpoint')
    p.add_argument('--top-k', type=int, default=100)
    p.add_argument('--out', help='write the metrics as JSON here')
    args = p.parse_args()
    cfg = load_config(args)
    from mmdet3d.apis import init_model
    from mmdet3d.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    import plugin
    plugin.compat.apply()
    model = init_model(cfg, args.checkpoint, device='cpu')
    head = model.img_centre_head
    if head is None:
        raise ValueError(f'{args.config}: model.img_centre_head is not set; nothing to evaluate')
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    total = dict(centres=0, found=0, found_any=0, rel_sum=0.0)
    generator = camera_query_generator(model)
    from plugin.models.query_generators import QueryInputs
    for idx in range(len(dataset)):
        data = model.data_preprocessor(pseudo_collate([dataset[idx]]), training=False)
        samples = data['data_samples']
        metas = [s.metainfo for s in samples]
        boxes = [s.eval_ann_info['gt_bboxes_3d'].tensor for s in samples]
        labels = [torch.as_tensor(s.eval_ann_info['gt_labels_3d']) for s in samples]
        with torch.no_grad():
            img_feats, _, _, geometry = model.extract_feat(data['inputs'], metas)
            outs = model.image_centres(img_feats, geometry)
            targets = head.targets(boxes, labels, geometry, img_feats.shape[-2:])
            metrics = centre_metrics(outs, targets, head, args.top_k)
            if generator is not None:
                ref = generator(QueryInputs(len(samples), img_feats=img_feats, img_centre=outs, geometry=geometry)).ref
                metrics.update(query_coverage(ref, boxes, generator.pc_range))
        for key, value in metrics.items():
            total[key] = total.get(key, 0) + value
    n = max(1, total['centres'])
    result = dict(samples=len(dataset), centres=total['centres'], top_k=args.top_k, recall=total['found'] / n,
                  recall_any_class=total['found_any'] / n, depth_abs_rel=total['rel_sum'] / n)
    if generator is not None:
        result.update(camera_queries=generator.num_query, boxes=total['boxes'],
                      **{f'query_coverage_{m}m': total[f'covered_{m}'] / max(1, total['boxes']) for m in COVERAGE_M})
    print(json.dumps(result))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
