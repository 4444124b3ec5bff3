"""Training-iteration time, peak memory and inference latency of a config, on this machine.

    python tools/benchmark/train_and_inference_speed.py \
        configs/synthetic/cmt_pillar080_r18-256x144_1xb2-10e_synthetic-nus-3d.py --iters 10

Uses the config's own train/test datasets (generated data by default), a fixed batch for
the training iterations (so data loading is not timed) and one sample at a time for
inference. Peak memory is the process's maximum resident set size (CPU) or
torch.cuda.max_memory_allocated (GPU). Wall-clock figures are machine-dependent: compare
configs within one run, e.g. by passing several configs.
"""
import argparse
import os.path as osp
import resource
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def bench(config: str, iters: int, warmup: int, device: str, cfg_options=None):
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    bs = cfg.train_dataloader.batch_size
    batch = pseudo_collate([train_set[i] for i in range(bs)])
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(warmup + iters):
        t = time.perf_counter()
        data = model.data_preprocessor(batch, training=True)
        loss = sum(model.loss(data['inputs'], data['data_samples']).values())
        optim.zero_grad()
        loss.backward()
        optim.step()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith('cuda')
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    model.eval()
    lat = []
    with torch.no_grad():
        for i in range(warmup + iters):
            sample = pseudo_collate([test_set[i % len(test_set)]])
            t = time.perf_counter()
            data = model.data_preprocessor(sample, training=False)
            model.predict(data['inputs'], data['data_samples'])
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            if i >= warmup:
                lat.append(time.perf_counter() - t)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    return dict(config=osp.basename(config), batch=bs, train_iter_s=med(times), peak_mem_mb=peak,
                infer_s=med(lat))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('configs', nargs='+')
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = p.parse_args()
    rows = [bench(c, args.iters, args.warmup, args.device) for c in args.configs]
    print('\n| config | batch | train iteration (s, median) | peak memory (MB) | inference per sample (s, median) |')
    print('| --- | --- | --- | --- | --- |')
    for r in rows:
        print(f"| {r['config']} | {r['batch']} | {r['train_iter_s']:.2f} | {r['peak_mem_mb']:.0f} "
              f"| {r['infer_s']:.2f} |")
    if len(rows) > 1:
        base = rows[0]
        for r in rows[1:]:
            print(f"{r['config']} vs {base['config']}: train x{r['train_iter_s'] / base['train_iter_s']:.2f}, "
                  f"inference x{r['infer_s'] / base['infer_s']:.2f}")


if __name__ == '__main__':
    main()
