"""The three back-ends of AQR's biased attention (`aqr_attention/backends.py`) against
float64 dense references: the compiled CPU kernel, the pure-PyTorch route and the Triton
kernels, the latter run by Triton's interpreter on CPU tensors (TRITON_INTERPRET=1 is set
in conftest.py before triton is imported), i.e. the very kernels a GPU runs.

Per route: outputs and the gradients wrt q, k, v, both weights and a learnable scale
within 1e-5 of float64 in float32 (border windows, unseen queries, key padding, K not a
multiple of the Triton key block); float64 gradcheck; a window holding > 99.9 % of the
attention under a bias of -5 x max_scale; float16 / bfloat16 inputs and autocast against
float32 within stated tolerances.
"""
import math
import os
import subprocess
import sys

import pytest
import torch

from aqr_attention import LocalWindowBias, attention_backend, local_bias_attention
from aqr_attention.backends import BACKENDS, bias_attention_backend, get_attention_backend
from tests.helpers.attention_cases import (CAMS, HALF_TOL, check_against_references, dominant_window_case, make_case,
                                          padding_mask, reference_attention)

ROUTES = ['cpu_kernel', 'torch', 'triton']


@pytest.fixture(params=ROUTES)
def route(request):
    with attention_backend(request.param):
        yield request.param


def test_auto_takes_the_cpu_kernel_on_cpu_and_names_are_checked():
    x = torch.zeros(1)
    assert get_attention_backend() == 'auto' and bias_attention_backend(x) == 'cpu_kernel'
    with attention_backend('torch'):
        assert bias_attention_backend(x) == 'torch'
        with attention_backend('triton'):
            assert bias_attention_backend(x) == 'triton'
        assert get_attention_backend() == 'torch'
    assert get_attention_backend() == 'auto'
    with pytest.raises(ValueError, match='unknown attention backend'):
        with attention_backend('flash'):
            pass
    assert set(BACKENDS) == {'auto', 'cpu_kernel', 'triton', 'torch'}


def test_triton_on_cpu_without_the_interpreter_is_refused(monkeypatch):
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    with attention_backend('triton'), pytest.raises(RuntimeError, match='TRITON_INTERPRET=1'):
        bias_attention_backend(torch.zeros(1))


def test_the_routes_really_differ(monkeypatch):
    """Each forced back-end runs its own code: the others are made to fail."""
    from aqr_attention import grouped_route, triton_bias_attention
    leaves, bias = make_case(3)
    q, k, v = leaves[:3]

    def boom(*args, **kwargs):
        raise AssertionError('wrong route')

    monkeypatch.setattr(triton_bias_attention, 'triton_bias_attention', boom)
    with attention_backend('triton'), pytest.raises(AssertionError, match='wrong route'):
        local_bias_attention(q, k, v, bias)
    monkeypatch.undo()
    monkeypatch.setattr(grouped_route.GroupedWindows, 'corrections', boom)
    with attention_backend('cpu_kernel'):
        local_bias_attention(q, k, v, bias)
    with attention_backend('torch'), pytest.raises(AssertionError, match='wrong route'):
        local_bias_attention(q, k, v, bias)


@pytest.mark.parametrize('window_size', [1, 5, (5, 3), 15], ids=['w1', 'w5', 'pair5_3', 'w15'])
@pytest.mark.parametrize('layout', ['contiguous', 'transposed'])
def test_float32_matches_float64_dense(route, window_size, layout):
    """Corner centres (border windows), view -1 queries, 90 keys (not a multiple of the
    Triton key block), learnable scale; outputs and all six gradients within 1e-5."""
    leaves, bias = make_case(window_size, layout)
    check_against_references(leaves, bias, window_size)


@pytest.mark.parametrize('mask_kind', ['key_padding', 'dead_sample'])
def test_key_padding_and_dead_samples(route, mask_kind):
    leaves, bias = make_case((5, 3), 'transposed')
    b = leaves[0].shape[0]
    mask = padding_mask(bias, b)
    if mask_kind == 'dead_sample':
        mask[1] = True
    out, grads = check_against_references(leaves, bias, (5, 3), key_padding_mask=mask)
    if mask_kind == 'dead_sample':
        assert (out[1] == 0).all() and (grads[0][1] == 0).all() and (out[0] != 0).any()


@pytest.mark.parametrize('shapes', [((5, 6), None), (None, CAMS)], ids=['bev_only', 'cam_only'])
def test_single_modality(route, shapes):
    leaves, bias = make_case(3, 'transposed', bev_shape=shapes[0], cam_shape=shapes[1])
    check_against_references(leaves, bias, 3)


def test_float64_gradcheck(route):
    """torch.autograd.gradcheck in float64 (finite differences vs the analytic backward)."""
    leaves, bias = make_case((3, 3), 'contiguous', batch=1, nq=4, bev_shape=(3, 4), cam_shape=(2, 2, 3), dim=4)
    leaves = [t.detach().double().requires_grad_() for t in leaves]
    mask = torch.zeros(1, bias.num_keys, dtype=torch.bool)
    mask[:, -2] = True

    def fn(q, k, v, lw, cw, scale):
        b = LocalWindowBias(bias.bev_shape, bias.cam_shape, bias.bev_center, bias.cam_center, lw, cw,
                            (3, 3), scale=scale)
        return local_bias_attention(q, k, v, b, mask)

    out = fn(*leaves)
    assert out.dtype == torch.float64
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


def test_negative_bias_on_a_dominant_window(route):
    leaves, bias = dominant_window_case()
    q, k, v = leaves[:3]
    # the precondition: without the bias the windows hold more than 99.9 % of the attention
    s = q.double() @ k.double().transpose(-1, -2) / math.sqrt(q.shape[-1])
    share = (torch.softmax(s, -1) * (bias.to_dense().double()[:, None] != 0)).sum(-1)
    assert share.min() > 0.999 and share.max() < 1 - 1e-6
    out = local_bias_attention(q, k, v, bias)
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(out, leaves, go)
    ref = reference_attention(q, k, v, bias.to_dense())
    ref_grads = torch.autograd.grad(ref, leaves, go.double())
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)
    # the scale's and weights' gradients are large here (|d scale| ~ 40): relative 1e-5
    for name, got, want in zip('q k v lidar_weight camera_weight scale'.split(), grads, ref_grads):
        torch.testing.assert_close(got.double(), want.double(), atol=1e-5, rtol=1e-5, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_inputs(route, dtype):
    """float16 / bfloat16 q, k, v: the result has the input dtype and is as close to the
    float64 reference as rounding the inputs and output allows; gradients too."""
    leaves, bias = make_case((5, 3), 'transposed')
    q, k, v = (t.detach().to(dtype).requires_grad_() for t in leaves[:3])
    out = local_bias_attention(q, k, v, bias)
    assert out.dtype == dtype
    ref = reference_attention(q, k, v, bias.to_dense())
    torch.testing.assert_close(out.double(), ref, atol=HALF_TOL[dtype], rtol=0)
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    grads = torch.autograd.grad(out, (q, k, v), go.to(dtype))
    ref_grads = torch.autograd.grad(ref, (q, k, v), go.double())
    for got, want in zip(grads, ref_grads):
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want.double(), atol=5 * HALF_TOL[dtype], rtol=0)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast_keeps_float32_statistics(route, dtype):
    """Under autocast (what AmpOptimWrapper turns on) the biased attention of float32
    inputs is the float32 result: it computes with autocast off."""
    leaves, bias = make_case((5, 3), 'transposed')
    q, k, v = leaves[:3]
    plain = local_bias_attention(q, k, v, bias)
    with torch.autocast('cpu', dtype=dtype):
        amp = local_bias_attention(q, k, v, bias)
    assert amp.dtype == torch.float32
    torch.testing.assert_close(amp, plain, atol=1e-6, rtol=0)


def test_the_dominant_window_case_breaks_an_unguarded_correction(monkeypatch):
    """Without the direct recomputation of ill-conditioned rows the correction route is
    wrong on the dominant-window case: the test above can fail."""
    from aqr_attention import bias_attention
    monkeypatch.setattr(bias_attention, 'MAX_AMPLIFICATION', float('inf'))
    leaves, bias = dominant_window_case()
    q, k, v = leaves[:3]
    with attention_backend('cpu_kernel'):
        out = local_bias_attention(q, k, v, bias)
    ref = reference_attention(q, k, v, bias.to_dense())
    assert not torch.allclose(out.double(), ref, atol=1e-3) or not torch.isfinite(out).all()


@pytest.mark.parametrize('lam_route', ['cpu_kernel', 'torch'])
def test_lam_window_attention_float64_gradcheck(lam_route):
    from aqr_attention import local_window_attention
    leaves, bias = make_case((3, 3), 'contiguous', batch=1, nq=4, bev_shape=(3, 4), cam_shape=(2, 2, 3), dim=4)
    q, k, v = (t.detach().double().requires_grad_() for t in leaves[:3])
    with attention_backend(lam_route):
        assert local_window_attention(q, k, v, bias.parts()).dtype == torch.float64
        assert torch.autograd.gradcheck(lambda a, b, c: local_window_attention(a, b, c, bias.parts()), (q, k, v),
                                        eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


def test_environment_variable_sets_the_default():
    code = 'from aqr_attention import get_attention_backend; print(get_attention_backend())'
    env = dict(os.environ, AQR_ATTENTION_BACKEND='torch')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert res.stdout.strip().splitlines()[-1] == 'torch', res.stderr[-1000:]
    env['AQR_ATTENTION_BACKEND'] = 'fast'
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert res.returncode != 0 and 'AQR_ATTENTION_BACKEND' in res.stderr
