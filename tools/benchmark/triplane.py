"""Memory and time of the triplane generator's attention.

    python tools/benchmark/triplane.py                      # attention + whole generator
    python tools/benchmark/triplane.py --skip-generator --skip-reference

Cases, each forward + backward (gradients for the input and the parameters) in its own
process (peak resident set on CPU, peak allocation on CUDA, above what was held before):
  * `sdpa`  the generator's self-attention (`BiasedMultiheadAttention`, 8 heads x 64 over d_model 512)
            on 3 x 64 x 64 = 12,288 tokens, batch 1;
  * `mha`   the naive reference: nn.MultiheadAttention(512, 8) called as
            `self_attn(x, x, x)`, i.e. returning the attention weights, same sizes;
  * `generator` / `generator-amp`  the whole `TriplaneGenerator` of
            configs/_base_/models/triplane.py (2 layers, upsampler to 3 x 80 x 128 x 128,
            activation checkpointing) on 448 context tokens, in float32 and under autocast
            (bfloat16 on a CPU, float16 on CUDA).
Printed: time and memory ratios of `sdpa` against `mha` measured in the same run (target:
>= 10x less memory). If the reference does not fit, that is said, with the size of its
[heads, tokens, tokens] weights as the estimate.
"""
import argparse
import json
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from measure import measure_step, median, run_in_child  # noqa: E402

TOKENS, D_MODEL, HEADS, HEAD_DIM, CONTEXT = 3 * 64 * 64, 512, 8, 64, 448


def build_generator():
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import plugin  # noqa: F401
    from mmdet3d.registry import MODELS
    init_default_scope('mmdet3d')
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(root, 'configs/_base_/models/triplane.py')).triplane_neck.generator
    gen = MODELS.build(cfg)
    gen.init_weights()
    return gen.train()


def run_case(method: str, device: str, repeats: int) -> dict:
    from plugin.models.layers.biased_attention import BiasedMultiheadAttention
    torch.manual_seed(0)
    if method.startswith('generator'):
        module = build_generator().to(device)
        x = torch.randn(1, CONTEXT, module.context_dim, device=device, requires_grad=True)
        amp_dtype = torch.float16 if device.startswith('cuda') else torch.bfloat16

        def forward():
            with torch.autocast(device.split(':')[0], dtype=amp_dtype, enabled=method == 'generator-amp'):
                return module(x)
    else:
        if method == 'sdpa':
            module = BiasedMultiheadAttention(D_MODEL, HEADS, head_dim=HEAD_DIM)
        else:
            module = torch.nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True)
        module = module.to(device)
        x = torch.randn(1, TOKENS, D_MODEL, device=device, requires_grad=True)

        def forward():
            return module(x) if method == 'sdpa' else module(x, x, x)[0]   # the reference's call

    def step():
        forward().float().mean().backward()
        module.zero_grad(set_to_none=True)
        x.grad = None

    time_s, peak = measure_step(step, repeats, device)
    return dict(method=method, time_s=time_s, peak_mb=peak)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=1, help='interleaved rounds (the median time is kept)')
    parser.add_argument('--skip-reference', action='store_true', help='nn.MultiheadAttention needs ~15 GB')
    parser.add_argument('--skip-generator', action='store_true')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--case', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.device, args.repeats)))
        return

    methods = ['sdpa'] + ([] if args.skip_reference else ['mha']) + \
        ([] if args.skip_generator else ['generator', 'generator-amp'])
    runs, failed = {m: [] for m in methods}, {}
    for _ in range(args.rounds):
        for m in methods:
            if m in failed:
                continue
            try:
                runs[m].append(run_in_child(__file__, ['--case', m, '--device', args.device,
                                                       '--repeats', args.repeats]))
            except RuntimeError as err:   # e.g. the reference killed for memory
                failed[m] = str(err).splitlines()[-1][:200]
    res = {m: dict(time_s=median(r['time_s'] for r in v), peak_mb=max(r['peak_mb'] for r in v))
           for m, v in runs.items() if v}
    weights_gb = HEADS * TOKENS * TOKENS * 4 / 2**30
    print(f'device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}; '
          f'{TOKENS} tokens, {HEADS} heads x {HEAD_DIM}, d_model {D_MODEL}, batch 1; forward + backward')
    print('| case | time (s) | peak extra memory (MB) | comparison |')
    print('| --- | --- | --- | --- |')
    for m in methods:
        if m in failed:
            print(f'| {m} | - | - | did not run ({failed[m]}); its attention weights alone are '
                  f'{weights_gb:.1f} GB per copy |')
            continue
        r, note = res[m], ''
        if m == 'sdpa':
            if 'mha' in res:
                ref = res['mha']
                note = (f'vs nn.MultiheadAttention: memory 1/{ref["peak_mb"] / r["peak_mb"]:.1f}, '
                        f'time 1/{ref["time_s"] / r["time_s"]:.2f}')
            else:
                note = f'reference not measured; its weights alone: {weights_gb:.1f} GB per copy'
        elif m == 'generator-amp' and 'generator' in res:
            g = res['generator']
            note = f'vs float32: time x{r["time_s"] / g["time_s"]:.2f}, memory x{r["peak_mb"] / g["peak_mb"]:.2f}'
        print(f'| {m} | {r["time_s"]:.2f} | {r["peak_mb"]:.0f} | {note} |', flush=True)


if __name__ == '__main__':
    main()
