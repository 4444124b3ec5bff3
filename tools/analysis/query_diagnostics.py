"""Watches a DETR-style head learn (or collapse): trains CONFIG with mmengine's Runner and,
every `--every` iterations, runs the model in eval mode on one fixed training batch and
records

* `centre_spread_m`: the standard deviation over queries of the last layer's predicted
  box centres (metres, mean of x and y). Collapsed queries all predict the same box.
* `score_spread` / `top_score`: the spread over queries, and the maximum, of the best
  class probability.
* `match_dist_m`: the mean centre distance between each ground-truth box and the query the
  head's Hungarian assigner gives it (last layer).
* `churn`: the fraction of ground-truth boxes whose assigned query changed since the last
  probe (DETR's unstable matching, Li et al. "DN-DETR", CVPR 2022); a query is identified
  by the BEV cell of its reference point, which is what a heatmap query is.
* `attn_entropy`: the entropy of the last decoder layer's cross-attention (with its
  attention bias, e.g. AQR's) over the valid keys, divided by log(number of keys)
  (1 = uniform, the start of training).

    python tools/analysis/query_diagnostics.py CONFIG --seed 1 --epochs 5 --every 20 \
        --out work_dirs/diag/seed1.json [--cfg-options k=v ...]

Training stops after `--epochs` epochs of the config's schedule (the learning-rate schedule
stays the config's). The probe batch is drawn with the random states saved and restored,
and the probes run without gradients in eval mode, so they leave the training as it is.
"""
import inspect
import json
import math
import os
import os.path as osp
import random
import sys
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from config_cli import config_parser, load_config  # noqa: E402

from mmengine.hooks import Hook  # noqa: E402

from plugin.models.dense_heads.cmt_head import CMT_CODE_ORDER  # noqa: E402
from plugin.models.query_generators import QueryInputs  # noqa: E402
from plugin.models.task_modules.box3d_coding import encode_boxes  # noqa: E402
from plugin.models.utils.grids import bev_cells  # noqa: E402


class CrossAttentionEntropy:
    """Forward hook on a `BiasedMultiheadAttention`: the normalised entropy of its attention
    weights, recomputed densely from its q / k projections, masks and attention bias as its
    forward combines them (probe batches are small)."""

    def __init__(self):
        self.value = float('nan')

    def __call__(self, module, args, kwargs, output):
        kwargs = inspect.signature(module.forward).bind(*args, **kwargs).arguments
        query, key = kwargs['query'], kwargs.get('key')
        if key is None:
            return
        query_pos, key_pos = kwargs.get('query_pos'), kwargs.get('key_pos')
        if key_pos is None and query_pos is not None and key.shape == query.shape:
            key_pos = query_pos
        q_in = query if query_pos is None else query + query_pos
        k_in = key if key_pos is None else key + key_pos
        q, k = module._heads(module.q_proj(q_in)), module._heads(module.k_proj(k_in))
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])                # [B, h, Q, K]
        bias = kwargs.get('attn_bias')
        if bias is not None:
            dense = bias if isinstance(bias, torch.Tensor) else bias.to_dense()
            logits = logits + (dense[:, None] if dense.dim() == 3 else dense)
        if kwargs.get('attn_mask') is not None:
            mask = kwargs['attn_mask']
            logits = logits.masked_fill(mask, float('-inf')) if mask.dtype == torch.bool else logits + mask
        valid = torch.ones(logits.shape[0], logits.shape[-1], dtype=torch.bool, device=logits.device)
        if kwargs.get('key_padding_mask') is not None:
            valid = ~kwargs['key_padding_mask']
        logits = logits.masked_fill(~valid[:, None, None], float('-inf'))
        p = logits.softmax(-1)
        ent = -(p * p.clamp(min=1e-12).log()).sum(-1)                            # [B, h, Q]
        self.value = float((ent / valid.sum(-1).clamp(min=2).log()[:, None, None]).mean().detach())


class QueryDiagnosticsHook(Hook):
    """Probes the model on the first training batch every `every` iterations (see the module
    docstring) and appends one record per probe to `records`."""

    def __init__(self, every: int = 20):
        self.every, self.records, self.batch, self.previous = every, [], None, None

    def before_train(self, runner):
        states = random.getstate(), np.random.get_state()
        with torch.random.fork_rng():   # drawing the probe batch must not shift the training's randomness
            self.batch = next(iter(runner.train_dataloader))
        random.setstate(states[0])
        np.random.set_state(states[1])
        self.probe(runner, 0)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if (runner.iter + 1) % self.every == 0:
            self.probe(runner, runner.iter + 1)

    @torch.no_grad()
    def probe(self, runner, iteration: int):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        head = model.pts_bbox_head
        entropy = CrossAttentionEntropy()
        last_cross = [m for n, m in head.transformer.named_modules() if n.endswith('cross_attn')][-1]
        handle = last_cross.register_forward_hook(entropy, with_kwargs=True)
        was_training = model.training
        model.eval()
        try:
            data = model.data_preprocessor(self.batch, False)
            samples = data['data_samples']
            metas = [s.metainfo for s in samples]
            img_feats, bev, planes, geometry = model.extract_feat(data['inputs'], metas)
            outs, _ = head(bev, img_feats, triplane=planes, geometry=geometry)
            ref = head.initial_queries(QueryInputs(len(samples), outs[0].get('dense_heatmap'), img_feats,
                                                   geometry=geometry)).ref
            boxes, labels = model._gt(samples)
        finally:
            handle.remove()
            model.train(was_training)
        rows, cols = bev.shape[-2:] if bev is not None else (1, 1)
        cells = bev_cells(ref, (rows, cols))
        query_cell = cells[..., 0] * cols + cells[..., 1]                         # [B, Q]: a query's identity
        best, spread, assigned, dists = [], [], [], []
        for t, out in enumerate(outs):
            cls, codes = out['cls'][-1].float(), out['codes'][-1].float()          # [B, Q, C], [B, Q, 10]
            centres = codes[..., [list(CMT_CODE_ORDER).index(i) for i in (0, 1)]] if head.code_layout == 'cmt' \
                else codes[..., :2]
            best.append(cls.sigmoid().max(-1).values)
            spread.append(centres.std(1).mean())
            for b in range(len(boxes)):
                task_labels = head._task_targets(t, labels[b].long())
                keep = task_labels < len(head.tasks[t])
                gt_codes = encode_boxes(boxes[b][keep].to(codes.dtype))   # matched as the loss matches them
                assign, _ = head.assigner.assign(cls[b], codes[b], task_labels[keep], gt_codes)
                cell_of_gt = torch.full((len(gt_codes),), -1, dtype=torch.long)
                hit = (assign >= 0).nonzero()[:, 0]
                cell_of_gt[assign[hit]] = query_cell[b, hit]
                assigned.append(cell_of_gt)
                if len(hit):
                    gt_xy = boxes[b][keep][:, :2].to(centres.dtype)
                    dists.append((centres[b, hit] - gt_xy[assign[hit]]).norm(dim=-1))
        best = torch.stack(best).max(0).values                                   # [B, Q] over all tasks
        churn = float('nan')
        if self.previous is not None:
            now, before = torch.cat(assigned), torch.cat(self.previous)
            churn = float((now != before).float().mean()) if len(now) else float('nan')
        self.previous = assigned
        record = dict(iter=iteration,
                      centre_spread_m=float(torch.stack(spread).mean()),
                      score_spread=float(best.std(1).mean()), top_score=float(best.max()),
                      match_dist_m=float(torch.cat(dists).mean()) if dists else float('nan'),
                      churn=churn, attn_entropy=entropy.value)
        self.records.append(record)
        runner.logger.info('query diagnostics: ' + ', '.join(
            f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in record.items()))


def summarise(records: List[Dict]) -> str:
    keys = ['iter', 'centre_spread_m', 'score_spread', 'top_score', 'match_dist_m', 'churn', 'attn_entropy']
    lines = ['| ' + ' | '.join(keys) + ' |', '|' + ' --- |' * len(keys)]
    for r in records:
        lines.append('| ' + ' | '.join(f'{r[k]:.3f}' if isinstance(r[k], float) else str(r[k]) for k in keys) + ' |')
    return '\n'.join(lines)


def main():
    p = config_parser(__doc__)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--epochs', type=int, default=5, help='epochs of the schedule to train')
    p.add_argument('--every', type=int, default=20, help='iterations between probes')
    p.add_argument('--work-dir', default='work_dirs/query_diagnostics')
    p.add_argument('--out', default=None, help='JSON file for the records (default: WORK_DIR/seed{S}.json)')
    args = p.parse_args()
    cfg = load_config(args)
    cfg.randomness = dict(seed=args.seed)
    cfg.train_cfg.max_epochs = args.epochs
    cfg.train_cfg.val_interval = 10 ** 6
    cfg.work_dir = args.work_dir
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10 ** 6, save_last=False)
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    hook = QueryDiagnosticsHook(args.every)
    runner.register_hook(hook, priority='LOWEST')
    runner.train()
    out = args.out or osp.join(args.work_dir, f'seed{args.seed}.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(dict(config=args.config, seed=args.seed, cfg_options=args.cfg_options or {},
                       records=hook.records), f, indent=1)
    print(summarise(hook.records))
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
