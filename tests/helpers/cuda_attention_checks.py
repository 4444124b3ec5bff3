"""The CUDA checks of AQR's biased attention, runnable with torch (and triton) alone.

Each `check_*` function raises AssertionError on a failure. pytest runs them through
tests/aqr_attention/test_cuda_kernels.py when a GPU is visible; on a GPU machine without
pytest or the OpenMMLab stack, `python -m tests.helpers.cuda_attention_checks` runs them
all and prints one PASS / FAIL line each (`tools/gpu_check.sh --kernels-only`).

The compiled Triton kernels (and the PyTorch route on CUDA) against float64 dense
attention: outputs and the gradients wrt q, k, v, both weights and the scale, at sizes
larger than one block in both directions, for every dtype and the head widths the
launch table distinguishes, with a key-padding mask and a dominant window under a
negative bias; float64 gradcheck; the back-end choice on this GPU.
"""
import sys
import time
import traceback

import torch

from aqr_attention import LocalWindowBias, attention_backend, local_bias_attention
from aqr_attention.backends import bias_attention_backend
from tests.helpers.attention_cases import (HALF_TOL, additive, dominant_window_case, make_case, padding_mask,
                                          reference_attention)


def to_cuda(leaves, bias, dtype=torch.float32):
    leaves = [t.detach().to('cuda', dtype if t.dim() == 4 else torch.float32).requires_grad_() for t in leaves]
    bias = LocalWindowBias(bias.bev_shape, bias.cam_shape, bias.bev_center.cuda(), bias.cam_center.cuda(),
                           leaves[3], leaves[4], (bias.bev_window, bias.cam_window), scale=leaves[5])
    return leaves, bias


def compare(leaves, bias, key_padding_mask, out_tol, grad_tol):
    """key_padding_mask: bool [B, K] (True = padding) or None."""
    q, k, v = leaves[:3]
    out = local_bias_attention(q, k, v, bias, key_padding_mask)
    mask = None if key_padding_mask is None else additive(key_padding_mask.cpu()).cuda()
    assert out.is_cuda and out.dtype == q.dtype and torch.isfinite(out).all()
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).cuda()
    grads = torch.autograd.grad(out, leaves, go.to(out.dtype))
    ref = reference_attention(q, k, v, bias.to_dense(), mask)
    ref_grads = torch.autograd.grad(ref, leaves, go.double())
    torch.testing.assert_close(out.double(), ref, atol=out_tol, rtol=0)
    for name, got, want in zip('q k v lidar_weight camera_weight scale'.split(), grads, ref_grads):
        torch.testing.assert_close(got.double(), want.double(), atol=grad_tol, rtol=grad_tol,
                                   msg=lambda m: f'grad {name}: {m}')


def _large_case(window_size, dtype=torch.float32, dim=8):
    return to_cuda(*make_case(window_size, 'transposed', nq=40, bev_shape=(20, 24), cam_shape=(3, 9, 16),
                              dim=dim), dtype=dtype)


def check_auto_takes_triton():
    """sm_80 / sm_90 GPUs take the compiled kernels for every supported dtype."""
    q = torch.zeros(1, 1, 1, 32, device='cuda')
    major = torch.cuda.get_device_capability()[0]
    want = 'triton' if major in (8, 9) else 'torch'
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        assert bias_attention_backend(q.to(dtype)) == want, (dtype, want)


def check_float32(backend='triton'):
    """Border windows, unseen queries; windows of 1, (5, 3) and 15 cells; within 1e-5."""
    for window_size in (1, (5, 3), 15):
        leaves, bias = _large_case(window_size)
        with attention_backend(backend):
            compare(leaves, bias, None, 1e-5, 1e-5)


def check_head_widths(backend='triton'):
    """Heads of 16, 32, 64 and 128 (each of the launch table's widths), float32 and
    float64 within 1e-5, float16 / bfloat16 within their rounding."""
    for dim in (16, 32, 64, 128):
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            tol = HALF_TOL.get(dtype, 1e-5)
            leaves, bias = _large_case((5, 3), dtype, dim)
            with attention_backend(backend):
                compare(leaves, bias, None, tol, 5 * tol if dtype in HALF_TOL else tol)


def check_key_padding_and_negative_bias(backend='triton'):
    leaves, bias = to_cuda(*make_case((5, 3), 'transposed'))
    with attention_backend(backend):
        compare(leaves, bias, padding_mask(bias, 2).cuda(), 1e-5, 1e-5)
        compare(*to_cuda(*dominant_window_case()), None, 1e-5, 1e-5)


def check_half_precision():
    """Half-precision tensor-core products with float32 statistics, with a key-padding mask."""
    for dtype in (torch.float16, torch.bfloat16):
        leaves, bias = _large_case((5, 3), dtype)
        with attention_backend('triton'):
            compare(leaves, bias, None, HALF_TOL[dtype], 5 * HALF_TOL[dtype])
            compare(leaves, bias, padding_mask(bias, 2).cuda(), HALF_TOL[dtype], 5 * HALF_TOL[dtype])


def check_float64_gradcheck():
    leaves, bias = make_case((3, 3), 'contiguous', batch=1, nq=4, bev_shape=(3, 4), cam_shape=(2, 2, 3), dim=4)
    leaves = [t.detach().to('cuda', torch.float64).requires_grad_() for t in leaves]
    centres = bias.bev_center.cuda(), bias.cam_center.cuda()

    def fn(q, k, v, lw, cw, scale):
        return local_bias_attention(q, k, v, LocalWindowBias(bias.bev_shape, bias.cam_shape, *centres, lw, cw,
                                                             (3, 3), scale=scale))

    with attention_backend('triton'):
        assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


CHECKS = dict(auto_takes_triton=check_auto_takes_triton, float32_triton=check_float32,
              float32_torch=lambda: check_float32('torch'), head_widths=check_head_widths,
              key_padding_and_negative_bias_triton=check_key_padding_and_negative_bias,
              key_padding_and_negative_bias_torch=lambda: check_key_padding_and_negative_bias('torch'),
              half_precision=check_half_precision, float64_gradcheck=check_float64_gradcheck)


def main() -> int:
    if not torch.cuda.is_available():
        print('no CUDA device visible', file=sys.stderr)
        return 1
    print(f'torch {torch.__version__} | {torch.cuda.get_device_name(0)}')
    failed = 0
    for name, check in CHECKS.items():
        t0 = time.time()
        try:
            check()
            print(f'PASS {name} ({time.time() - t0:.1f} s)')
        except Exception:   # every check runs; each failure is printed with its traceback
            failed += 1
            print(f'FAIL {name}\n{traceback.format_exc()}')
    print(f'{len(CHECKS) - failed} passed, {failed} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
