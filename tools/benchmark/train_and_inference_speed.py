"""Training-iteration time, peak memory and inference latency of configs, on this machine.

    python tools/benchmark/train_and_inference_speed.py \
        configs/synthetic/cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py \
        configs/synthetic/cmt-aqr_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py --iters 10

Uses the configs' own train/test datasets (generated data by default), a fixed batch for
the training iterations (so data loading is not timed) and one sample at a time for
inference. The configs' iterations are interleaved (A, B, A, B, ...) in one process and
the medians compared, so that the machine's drift (other load, thermal state) hits every
config alike; the first config is the reference of the printed ratios. Peak memory is
measured for each config alone, in a child process: its peak resident set size (CPU)
or torch.cuda.max_memory_allocated (GPU).
"""
import argparse
import json
import os.path as osp
import subprocess
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from measure import median, rss_mb  # noqa: E402


class Runner:
    """One config's model, optimiser, fixed training batch and test samples."""

    def __init__(self, config: str, device: str):
        from mmengine.config import Config
        from mmengine.dataset import pseudo_collate
        from mmdet3d.registry import DATASETS, MODELS
        from mmdet3d.utils import register_all_modules
        register_all_modules(init_default_scope=True)
        import plugin  # noqa: F401
        cfg = Config.fromfile(config)
        self.name, self.device = osp.basename(config), device
        self.model = MODELS.build(cfg.model).to(device)
        self.model.init_weights()
        train_set = DATASETS.build(cfg.train_dataloader.dataset)
        self.batch_size = cfg.train_dataloader.batch_size
        self.batch = pseudo_collate([train_set[i] for i in range(self.batch_size)])
        test_set = DATASETS.build(cfg.test_dataloader.dataset)
        self.test_samples = [pseudo_collate([test_set[i]]) for i in range(min(4, len(test_set)))]
        self.optim = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.train_s, self.infer_s = [], []

    def _sync(self):
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()

    def train_step(self, record: bool):
        self.model.train()
        t = time.perf_counter()
        data = self.model.data_preprocessor(self.batch, training=True)
        loss = sum(self.model.loss(data['inputs'], data['data_samples']).values())
        self.optim.zero_grad()
        loss.backward()
        self.optim.step()
        self._sync()
        if record:
            self.train_s.append(time.perf_counter() - t)

    @torch.no_grad()
    def infer_step(self, i: int, record: bool):
        self.model.eval()
        sample = self.test_samples[i % len(self.test_samples)]
        t = time.perf_counter()
        data = self.model.data_preprocessor(sample, training=False)
        self.model.predict(data['inputs'], data['data_samples'])
        self._sync()
        if record:
            self.infer_s.append(time.perf_counter() - t)


def peak_memory_mb(config: str, iters: int, device: str) -> float:
    """Peak memory of `iters` training + inference iterations of one config, in a child."""
    out = subprocess.run([sys.executable, __file__, config, '--iters', str(iters), '--warmup', '0',
                          '--device', device, '--memory-child'], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f'{config}: memory run failed:\n{out.stderr[-2000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])['peak_mem_mb']


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('configs', nargs='+')
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--memory-child', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args()
    # memory first, each config alone in a child process, before this process grows
    peaks = None if args.memory_child else [peak_memory_mb(c, 3, args.device) for c in args.configs]
    runners = [Runner(c, args.device) for c in args.configs]
    for i in range(args.warmup + args.iters):
        for r in runners:
            r.train_step(record=i >= args.warmup)
    for i in range(args.warmup + args.iters):
        for r in runners:
            r.infer_step(i, record=i >= args.warmup)
    if args.memory_child:
        peak = (torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith('cuda')
                else rss_mb(peak=True))
        print(json.dumps(dict(peak_mem_mb=peak)))
        return
    print(f'\n{args.iters} interleaved iterations after {args.warmup} warm-up, device {args.device}')
    print('| config | batch | train iteration (s, median) | peak memory (MB) | inference per sample (s, median) |')
    print('| --- | --- | --- | --- | --- |')
    for r, peak in zip(runners, peaks):
        print(f'| {r.name} | {r.batch_size} | {median(r.train_s):.2f} | {peak:.0f} | {median(r.infer_s):.2f} |')
    base, base_peak = runners[0], peaks[0]
    for r, peak in zip(runners[1:], peaks[1:]):
        print(f'{r.name} vs {base.name}: train x{median(r.train_s) / median(base.train_s):.2f}, '
              f'memory x{peak / base_peak:.2f}, inference x{median(r.infer_s) / median(base.infer_s):.2f}')


if __name__ == '__main__':
    main()
