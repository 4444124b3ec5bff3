"""Cost of AQR's local-window attention bias against unbiased attention.

    python tools/benchmark/attention_bias.py                       # full size, batch 1 and 2
    python tools/benchmark/attention_bias.py --batches 1 --dense-batches 1 --repeats 3
    python tools/benchmark/attention_bias.py --device cuda --dtypes float16 bfloat16 float32

One cross-attention, forward + backward (gradients for q, k, v and both AQR weights), at
CMT's full nuScenes size: 8 heads of 32 channels, 900 queries, 56,400 keys (a 180 x 180
BEV grid + 6 views of 40 x 100 stride-16 pixels). Four ways:
  * `sdpa`    unbiased `scaled_dot_product_attention` (the target's reference);
  * `local`   `local_bias_attention` with windows 5 / 15 / 25 (exact, never dense) on the
              'auto' back-end: the compiled CPU kernel on CPU, the Triton kernels on CUDA;
  * `grouped` the same through the pure-PyTorch reference route (back-end 'torch';
              `--grouped-windows`, none by default);
  * `dense`   the naive form: the dense [B, Q, K] bias built by `to_dense()` and added
              to the scores through SDPA's float mask (it needs a gradient, so SDPA takes
              its math path).
Each case runs in its own subprocess; memory is the peak resident set (CPU) or the peak
allocation (CUDA) above what the inputs already hold. Figures are printed as ratios to
`sdpa` measured in the same run, because wall-clock numbers depend on the machine. The
cases of a batch run in `--rounds` interleaved rounds (sdpa, local 5, 15, 25, ..., then
again), each case's time being the median over rounds of its best repeat, so that the
machine's drift hits every case alike. `--dtypes` repeats the table for float16 /
bfloat16 inputs (what the decoder sees under AMP), each against SDPA in that dtype. Only
torch and this repository's `aqr_attention` package are imported, so it runs on a GPU
machine without the OpenMMLab stack.
"""
import argparse
import contextlib
import json
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from measure import measure_step, median, run_in_child  # noqa: E402

HEADS, HEAD_DIM, QUERIES = 8, 32, 900
BEV = (180, 180)
CAMS = (6, 40, 100)


DTYPES = {'float16': torch.float16, 'bfloat16': torch.bfloat16, 'float32': torch.float32}


def make_inputs(batch: int, window: int, device: str, seed: int = 0, dtype: torch.dtype = torch.float32):
    from aqr_attention import LocalWindowBias
    g = torch.Generator().manual_seed(seed)
    keys = BEV[0] * BEV[1] + CAMS[0] * CAMS[1] * CAMS[2]
    # laid out as an attention module's head split of [B, N, heads * dim] projections
    q = torch.randn(batch, QUERIES, HEADS, HEAD_DIM, generator=g).transpose(1, 2)
    k = torch.randn(batch, keys, HEADS, HEAD_DIM, generator=g).transpose(1, 2)
    v = torch.randn(batch, keys, HEADS, HEAD_DIM, generator=g).transpose(1, 2)
    bev_center = torch.stack([torch.randint(0, BEV[0], (batch, QUERIES), generator=g),
                              torch.randint(0, BEV[1], (batch, QUERIES), generator=g)], -1)
    # about 1 query in 10 is seen by no camera, as in CMT's initial reference points
    view = torch.randint(-1, CAMS[0] + 5, (batch, QUERIES), generator=g).clamp(max=CAMS[0] - 1)
    view[torch.rand(batch, QUERIES, generator=g) < 0.1] = -1
    cam_center = torch.stack([view, torch.randint(0, CAMS[1], (batch, QUERIES), generator=g),
                              torch.randint(0, CAMS[2], (batch, QUERIES), generator=g)], -1)
    lw = torch.rand(batch, QUERIES, generator=g) * 2 - 1
    cw = torch.rand(batch, QUERIES, generator=g) * 2 - 1
    q, k, v = [t.to(dtype) for t in (q, k, v)]
    q, k, v, lw, cw = [t.to(device).detach().requires_grad_() for t in (q, k, v, lw, cw)]
    bias = LocalWindowBias(BEV, CAMS, bev_center.to(device), cam_center.to(device), lw, cw, window)
    return q, k, v, lw, cw, bias


def run_case(method: str, batch: int, window: int, device: str, repeats: int, dtype: str = 'float32') -> dict:
    import torch.nn.functional as F
    from aqr_attention import LocalWindowBias, attention_backend, local_bias_attention
    torch.manual_seed(0)
    q, k, v, lw, cw, bias = make_inputs(batch, window, device, dtype=DTYPES[dtype])
    go = torch.randn_like(q)

    def step():
        if method == 'sdpa':
            out = F.scaled_dot_product_attention(q, k, v)
        elif method in ('local', 'grouped'):
            # a fresh bias every step, as the model builds one per forward: the packing /
            # grouping of its windows is timed too
            fresh = LocalWindowBias(BEV, CAMS, bias.bev_center, bias.cam_center, lw, cw, window)
            with attention_backend('torch') if method == 'grouped' else contextlib.nullcontext():
                out = local_bias_attention(q, k, v, fresh)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to_dense()[:, None].to(q.dtype))
        out.backward(go)
        for t in (q, k, v, lw, cw):
            t.grad = None

    time_s, peak = measure_step(step, repeats, device)
    return dict(method=method, batch=batch, window=window, dtype=dtype, time_s=time_s, peak_mb=peak)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--windows', type=int, nargs='+', default=[5, 15, 25])
    parser.add_argument('--grouped-windows', type=int, nargs='*', default=[],
                        help="windows at which the pure-PyTorch route (back-end 'torch') also runs")
    parser.add_argument('--dense-batches', type=int, nargs='*', default=[1],
                        help='batches at which the dense reference runs (7 GB and ~6x time at batch 1)')
    parser.add_argument('--repeats', type=int, default=2, help='timed repeats per case and round (the minimum is kept)')
    parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds (the median is kept)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtypes', nargs='+', choices=list(DTYPES), default=['float32'],
                        help='input dtypes of q, k, v (one table section each)')
    parser.add_argument('--case', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        method, batch, window, dtype = args.case.split(',')
        print(json.dumps(run_case(method, int(batch), int(window), args.device, args.repeats, dtype)))
        return

    def sub(method, batch, window, dtype):
        return run_in_child(__file__, ['--case', f'{method},{batch},{window},{dtype}', '--device', args.device,
                                       '--repeats', args.repeats])

    print(f'device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}; '
          f'{HEADS} heads x {HEAD_DIM}, {QUERIES} queries, '
          f'{BEV[0] * BEV[1] + CAMS[0] * CAMS[1] * CAMS[2]} keys; forward + backward')
    print('| dtype | batch | method | window | time (s) | time / sdpa | peak extra memory (MB) | memory / sdpa |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for dtype, batch in ((d, b) for d in args.dtypes for b in args.batches):
        cases = [('sdpa', 1)] + [('local', w) for w in args.windows] + [('grouped', w) for w in args.grouped_windows]
        if batch in args.dense_batches:
            cases.append(('dense', 15))
        runs = {case: [] for case in cases}
        for r in range(args.rounds):
            for case in cases:
                if case[0] != 'dense' or r == 0:     # the dense reference (7 GB) runs once
                    runs[case].append(sub(case[0], batch, case[1], dtype))
        rows = []
        for case in cases:
            rows.append(dict(runs[case][0], time_s=median(r['time_s'] for r in runs[case]),
                             peak_mb=max(r['peak_mb'] for r in runs[case])))
        ref = rows[0]
        for r in rows:
            window = '-' if r['method'] == 'sdpa' else r['window']
            print(f"| {dtype} | {batch} | {r['method']} | {window} | {r['time_s']:.2f} | "
                  f"{r['time_s'] / ref['time_s']:.2f}x | {r['peak_mb']:.0f} | "
                  f"{r['peak_mb'] / ref['peak_mb']:.2f}x |", flush=True)


if __name__ == '__main__':
    main()
