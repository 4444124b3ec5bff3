"""Memory and time of the fusion necks against the blocks they replace.

    python tools/benchmark/fusion_necks.py                   # batches 1 2 4, both comparisons
    python tools/benchmark/fusion_necks.py --batches 1 2 --skip-naive
    python tools/benchmark/fusion_necks.py --batches 1 4 16 32 --methods naive futr --max-mb 20000

Forward + backward (gradients for the BEV map, the image maps and the parameters) at a
200 x 200 BEV of 256 channels, 6 cameras with 8 x 22 maps of 256 channels (a 704 x 256
input at stride 32), on a ring rig whose cameras look outwards:
  * `naive`  a naive FuTr block: BEV tokens as queries of nn.MultiheadAttention
             (its defaults: attention weights returned) over all camera tokens, plus the
             residual - O(HW x camera tokens);
  * `futr`   `FuTrFusionNeck` as configured in configs/_base_/models/futr_neck.py;
  * `sparse10` / `sparse100`  `SparseBEVFusionNeck` keeping 10% / 100% of the cells.
Each case runs in its own process (peak resident set on CPU, peak allocation on CUDA, above
what the inputs hold); figures are printed as ratios measured in the same run: FuTr against
the naive block (target: <= 1/10 of its memory at batch 4, growing linearly with batch),
SparseBEV at 10% against 100% (target: >= 5x less time and memory). A case whose memory,
extrapolated linearly from the same method's largest measured batch, would exceed
`--max-mb` is not run: its row shows the extrapolation, marked as such.
"""
import argparse
import json
import math
import os.path as osp
import sys

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from measure import measure_step, median, run_in_child  # noqa: E402

BEV, BEV_C = (200, 200), 256
VIEWS, IMG_C, IMG_HW, INPUT_HW = 6, 256, (8, 22), (256, 704)
PC_RANGE = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]


def ring_metas(batch: int):
    """lidar2img of 6 pinhole cameras on a ring 1 m around the LiDAR, 60 degrees apart."""
    mats = []
    for v in range(VIEWS):
        t = math.radians(60.0 * v)
        fwd, right = np.array([math.cos(t), math.sin(t), 0.0]), np.array([math.sin(t), -math.cos(t), 0.0])
        rot = np.stack([right, [0.0, 0.0, -1.0], fwd])
        lidar2cam = np.eye(4)
        lidar2cam[:3, :3], lidar2cam[:3, 3] = rot, -rot @ (fwd * 1.0)
        k = np.eye(4)
        k[0, 0] = k[1, 1] = 0.8 * INPUT_HW[1] / 2
        k[0, 2], k[1, 2] = INPUT_HW[1] / 2, INPUT_HW[0] / 2
        mats.append(k @ lidar2cam)
    meta = dict(lidar2img=np.stack(mats), img_shape=INPUT_HW, input_shape=INPUT_HW)
    return [dict(meta) for _ in range(batch)]


class NaiveBlock(torch.nn.Module):
    """The naive FuTr block: every BEV token attends to every camera token."""

    def __init__(self):
        super().__init__()
        self.img_proj = torch.nn.Linear(IMG_C, BEV_C)
        self.attn = torch.nn.MultiheadAttention(BEV_C, 8, batch_first=True)

    def forward(self, bev, img_feats, geometry):
        b, c, h, w = bev.shape
        tokens = bev.flatten(2).transpose(1, 2)
        cams = self.img_proj(img_feats.permute(0, 1, 3, 4, 2).reshape(b, -1, IMG_C))
        out, _ = self.attn(tokens, cams, cams)
        return bev + out.transpose(1, 2).reshape(b, c, h, w)


def build(method: str):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import plugin  # noqa: F401
    from mmdet3d.registry import MODELS
    if method == 'naive':
        return NaiveBlock()
    init_default_scope('mmdet3d')
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    if method == 'futr':
        cfg = Config.fromfile(osp.join(root, 'configs/_base_/models/futr_neck.py')).futr_neck
    else:
        cfg = Config.fromfile(osp.join(root, 'configs/_base_/models/sparsebev_neck.py')).sparsebev_neck
        cfg.keep_ratio = 0.1 if method == 'sparse10' else 1.0
    neck = MODELS.build(dict(cfg, bev_channels=BEV_C, img_channels=IMG_C, pc_range=PC_RANGE))
    neck.init_weights()
    return neck


def run_case(method: str, batch: int, device: str, repeats: int) -> dict:
    torch.manual_seed(0)
    neck = build(method).to(device)
    from plugin.models.utils.camera_geometry import CameraGeometry
    bev = torch.randn(batch, BEV_C, *BEV, device=device, requires_grad=True)
    img = torch.randn(batch, VIEWS, IMG_C, *IMG_HW, device=device, requires_grad=True)
    geometry = CameraGeometry.from_metas(ring_metas(batch), device=device)

    def step():
        out = neck(bev, img, geometry)
        out.mean().backward()
        neck.zero_grad(set_to_none=True)
        bev.grad = img.grad = None

    time_s, peak = measure_step(step, repeats, device)
    return dict(method=method, batch=batch, time_s=time_s, peak_mb=peak)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 2, 4])
    parser.add_argument('--skip-naive', action='store_true', help='the naive block needs ~16 GB at batch 4')
    parser.add_argument('--methods', nargs='+', choices=['naive', 'futr', 'sparse10', 'sparse100'],
                        help='default: all (naive unless --skip-naive)')
    parser.add_argument('--max-mb', type=float, default=float('inf'),
                        help='skip (and extrapolate) cases expected to need more memory than this')
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=1, help='interleaved rounds (the median time is kept)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--case', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        method, batch = args.case.split(',')
        print(json.dumps(run_case(method, int(batch), args.device, args.repeats)))
        return

    methods = args.methods or ((['naive'] if not args.skip_naive else []) + ['futr', 'sparse10', 'sparse100'])
    if 'sparse10' in methods and 'sparse100' not in methods or 'sparse100' in methods and 'sparse10' not in methods:
        parser.error('--methods: sparse10 and sparse100 are compared with each other; give both or neither')
    args.batches = sorted(args.batches)
    runs = {(m, b): [] for m in methods for b in args.batches}
    res = {}
    for _ in range(args.rounds):
        for key in runs:
            expected = _extrapolated(res, *key)
            if expected is not None and expected['peak_mb'] > args.max_mb:
                res[key] = expected
                continue
            runs[key].append(run_in_child(__file__, ['--case', f'{key[0]},{key[1]}', '--device', args.device,
                                                      '--repeats', args.repeats]))
            res[key] = dict(time_s=median(r['time_s'] for r in runs[key]),
                            peak_mb=max(r['peak_mb'] for r in runs[key]), extrapolated=False)
    print(f'device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}; BEV {BEV} x {BEV_C}, '
          f'{VIEWS} views of {IMG_HW} x {IMG_C}; forward + backward')
    print('| batch | method | time (s) | peak extra memory (MB) | comparison |')
    print('| --- | --- | --- | --- | --- |')
    for b in args.batches:
        for m in methods:
            r = res[(m, b)]
            note = ''
            if m == 'futr':
                first = res[('futr', args.batches[0])]['peak_mb']
                note = f'memory x{r["peak_mb"] / first:.2f} of batch {args.batches[0]}'
                if 'naive' in methods:
                    n = res[('naive', b)]
                    note += f'; vs naive: memory 1/{n["peak_mb"] / r["peak_mb"]:.1f}, time 1/{n["time_s"] / r["time_s"]:.1f}'
            elif m == 'sparse10':
                full = res[('sparse100', b)]
                note = (f'vs keep 100%: time 1/{full["time_s"] / r["time_s"]:.1f}, '
                        f'memory 1/{full["peak_mb"] / r["peak_mb"]:.1f}')
            mark = ' (extrapolated, not run)' if r['extrapolated'] else ''
            print(f'| {b} | {m}{mark} | {r["time_s"]:.2f} | {r["peak_mb"]:.0f} | {note} |', flush=True)


def _extrapolated(res: dict, method: str, batch: int):
    """Time and memory of (method, batch) scaled linearly from the method's largest
    measured smaller batch; None before any."""
    measured = [b for (m, b), r in res.items() if m == method and b < batch and not r['extrapolated']]
    if not measured:
        return None
    ref = res[(method, max(measured))]
    scale = batch / max(measured)
    return dict(time_s=ref['time_s'] * scale, peak_mb=ref['peak_mb'] * scale, extrapolated=True)


if __name__ == '__main__':
    main()
