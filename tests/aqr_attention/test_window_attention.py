"""`local_window_attention` (the AQR's LAM attention) against a dense masked
reference built from the spec with explicit loops (`loop_dense_bias` of the bias tests,
used here as a window indicator): forward and gradients wrt q, k, v within 1e-5."""
import pytest
import torch

from aqr_attention import local_window_attention
from tests.helpers.attention_cases import (CAMS, TOL, LargestNewTensor, additive, loop_dense_bias, make_case,
                                          reference_attention)

# every test here runs through both window routes (conftest.window_route)
pytestmark = pytest.mark.usefixtures('window_route')


def window_indicator(bias, window_size):
    ones = torch.ones_like(bias.lidar_weight)
    on = loop_dense_bias(bias.bev_shape, bias.cam_shape, bias.bev_center, bias.cam_center, ones, ones,
                         window_size, torch.tensor(1.0))
    return on > 0                                                          # [B, Q, K]


def check(window_size, layout='contiguous', mask=None, **case):
    leaves, bias = make_case(window_size, layout, **case)
    q, k, v = leaves[:3]
    out = local_window_attention(q, k, v, bias.parts(), mask, chunk_elements=case.get('chunk_elements', 1 << 19))
    assert out.shape == q.shape and torch.isfinite(out).all()
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(out, (q, k, v), go)

    allowed = window_indicator(bias, window_size)
    ref_mask = torch.zeros(allowed.shape, dtype=torch.float64).masked_fill(~allowed, float('-inf'))[:, None]
    if mask is not None:
        ref_mask = ref_mask + additive(mask).double()
    ref = reference_attention(q, k, v, torch.zeros_like(allowed, dtype=torch.float64), ref_mask)
    ref_grads = torch.autograd.grad(ref, (q, k, v), go.double())
    torch.testing.assert_close(out.double(), ref, **TOL)
    for name, got, want in zip('qkv', grads, ref_grads):
        assert torch.isfinite(got).all(), name
        torch.testing.assert_close(got.double(), want.double(), **TOL, msg=lambda m: f'grad {name}: {m}')
    return out, grads, allowed


@pytest.mark.parametrize('layout', ['contiguous', 'transposed'])
@pytest.mark.parametrize('window_size', [1, 3, 15, (5, 3)], ids=['w1', 'w3', 'w15_larger_than_grid', 'pair5_3'])
def test_matches_dense_masked_reference(window_size, layout):
    """Border windows, queries seen by no camera (BEV window only), window 1, windows
    larger than the grid, separate BEV / camera windows."""
    out, _, allowed = check(window_size, layout)
    assert not allowed.all()                       # the windows do restrict (views at least)


@pytest.mark.parametrize('shapes', [((5, 6), None), (None, CAMS)], ids=['bev_only', 'cam_only'])
def test_single_modality_and_queries_without_window(shapes):
    """Camera only: view -1 queries have no window at all and get zeros (and zero grads)."""
    out, grads, allowed = check(3, 'transposed', bev_shape=shapes[0], cam_shape=shapes[1])
    if shapes[0] is None:
        dead = ~allowed.any(-1)                                            # [B, Q]
        assert dead.any()
        assert (out.transpose(1, 2)[dead] == 0).all() and (grads[0].transpose(1, 2)[dead] == 0).all()


def test_key_padding_and_tiny_budget():
    """-inf padding on camera keys inside windows; budget 1 splits groups to single queries."""
    b, n_keys, n_bev = 2, 5 * 6 + 3 * 4 * 5, 30
    g = torch.Generator().manual_seed(3)
    mask = torch.zeros(b, n_keys, dtype=torch.bool)
    mask[:, n_bev:] = torch.rand(b, n_keys - n_bev, generator=g) < 0.4
    for budget in (1, 1 << 19):
        check(3, 'transposed', mask=mask, chunk_elements=budget)


@pytest.mark.parametrize('dim', [12, 32, 64])
def test_decoder_and_aqr_head_dims(dim):
    """The kernel's unrolled head dims (decoder 32, AQR layer 64) and one that is not a
    multiple of its 8-wide dot products (12)."""
    check((5, 3), 'transposed', dim=dim)


def test_no_query_by_key_tensor():
    nq, bev, cams = 128, (100, 100), (2, 50, 100)
    leaves, bias = make_case((5, 15), 'transposed', batch=1, nq=nq, bev_shape=bev, cam_shape=cams)
    q, k, v = leaves[:3]
    bound = nq * k.shape[2] // 4
    meter = LargestNewTensor()
    with meter:
        out = local_window_attention(q, k, v, bias.parts(), chunk_elements=1 << 16)
        torch.autograd.grad(out.sum(), (q, k, v))
    assert meter.largest < bound, f'{meter.op} created {meter.largest} elements (bound {bound})'


def test_key_count_mismatch_raises():
    leaves, bias = make_case(3)
    q, k, v = leaves[:3]
    with pytest.raises(ValueError, match='keys'):
        local_window_attention(q, k[:, :, 1:], v[:, :, 1:], bias.parts())


def test_many_tiles_and_views(monkeypatch):
    """Several groups per part, boxes stopping at view borders (as at full size)."""
    from aqr_attention import grouped_route
    monkeypatch.setattr(grouped_route, 'GROUP_OVERHEAD_S', 1e-5)
    check((5, 7), 'transposed', nq=60, bev_shape=(30, 30), cam_shape=(3, 12, 14))


def test_autocast_gives_the_float32_result_and_checks_inputs():
    leaves, bias = make_case(3, 'transposed')
    q, k, v = leaves[:3]
    plain = local_window_attention(q, k, v, bias.parts())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        amp = local_window_attention(q, k, v, bias.parts())
        grads = torch.autograd.grad(amp.sum(), (q, k, v))
    torch.testing.assert_close(amp, plain, **TOL)
    assert all(torch.isfinite(g).all() for g in grads)
    with pytest.raises(ValueError, match='queries'):
        local_window_attention(q[:, :, 1:], k, v, bias.parts())
    with pytest.raises(ValueError, match=r'key_padding_mask must be bool \[B, K\]'):
        local_window_attention(q, k, v, bias.parts(), torch.zeros(k.shape[2], dtype=torch.bool))
