"""`local_bias_attention` / `LocalWindowBias` against independent dense references.

Two references, both plain float64 softmax attention:
  * `LocalWindowBias.to_dense()` added to the scores;
  * a dense bias built with explicit Python loops over queries and keys straight from the
    spec (so `to_dense` itself is checked, not just trusted).
Forward and the gradients wrt q, k, v, both weights and a learnable scale must agree within
1e-5 (float32), on the fused CPU op path and on the plain-tensor fallback, for contiguous
inputs and for the transposed head-split views attention modules produce.
"""
import pytest
import torch

from aqr_attention import local_bias_attention
from aqr_attention.lse_attention import cpu_flash_ops_available
from tests.helpers.attention_cases import (BEV, CAMS, DIM, HEADS, TOL, LargestNewTensor, check_against_references,
                                           make_case, reference_attention)

# every test here runs through both window routes (conftest.window_route)
pytestmark = pytest.mark.usefixtures('window_route')
PATHS = [pytest.param(False, id='fused'), pytest.param(True, id='fallback')]
LAYOUTS = ['contiguous', 'transposed']


@pytest.mark.parametrize('force_fallback', PATHS)
@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('window_size', [1, 3, 5, 15, (3, 5), (5, 1)],
                         ids=['w1', 'w3', 'w5', 'w15_larger_than_grid', 'pair3_5', 'pair5_1'])
def test_matches_dense_references(window_size, layout, force_fallback):
    """Border windows (corner centres), view -1 queries, window 1, windows larger than the
    grid and (bev, cam) pairs, on both paths and both input layouts."""
    leaves, bias = make_case(window_size, layout)
    check_against_references(leaves, bias, window_size, force_fallback=force_fallback)


@pytest.mark.parametrize('dim', [12, 32, 64])
def test_decoder_and_aqr_head_dims(dim):
    """The kernel's unrolled head dims (decoder 32, AQR layer 64) and one that is not a
    multiple of its 8-wide dot products (12)."""
    leaves, bias = make_case((5, 3), 'transposed', dim=dim)
    check_against_references(leaves, bias, (5, 3))


@pytest.mark.parametrize('force_fallback', PATHS)
@pytest.mark.parametrize('shapes', [(BEV, None), (None, CAMS)], ids=['bev_only', 'cam_only'])
def test_single_modality(shapes, force_fallback):
    leaves, bias = make_case(3, 'transposed', bev_shape=shapes[0], cam_shape=shapes[1])
    check_against_references(leaves, bias, 3, force_fallback=force_fallback)


@pytest.mark.parametrize('force_fallback', PATHS)
@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('mask_kind', ['key_padding', 'dead_sample'])
def test_key_padding_masks(mask_kind, layout, force_fallback):
    """Key padding on camera keys (inside some windows too), and a sample whose keys are
    all padding (zeros, no NaN)."""
    window_size = 3
    leaves, bias = make_case(window_size, layout)
    b, h, nq, _ = leaves[0].shape
    n_keys, n_bev = bias.num_keys, bias.num_bev_keys
    g = torch.Generator().manual_seed(2)
    # pad the last two columns of every camera map, plus a random 20 % of camera keys
    mask = torch.zeros(b, n_keys, dtype=torch.bool)
    mask[:, n_bev:].view(b, *CAMS)[..., -2:] = True
    mask[:, n_bev:] |= torch.rand(b, n_keys - n_bev, generator=g) < 0.2
    # the padded keys really fall inside windows (query 1 sits in the padded corner)
    idx, valid, _ = bias.window_keys()
    assert mask[:, None].expand(b, nq, n_keys).gather(-1, idx)[valid].any()
    if mask_kind == 'dead_sample':
        mask[1] = True
    out, grads = check_against_references(leaves, bias, window_size, key_padding_mask=mask,
                                          force_fallback=force_fallback)
    if mask_kind == 'dead_sample':
        assert (out[1] == 0).all() and (out[0] != 0).any()
        assert (grads[0][1] == 0).all() and (grads[3][1] == 0).all() and (grads[4][1] == 0).all()


@pytest.mark.parametrize('force_fallback', PATHS)
@pytest.mark.parametrize('chunk_elements', [1, 3000])
def test_small_chunk_budgets(chunk_elements, force_fallback):
    """Budgets that split the query groups (down to single queries at 1) stay exact."""
    leaves, bias = make_case(5, 'transposed', nq=40, chunk_elements=chunk_elements)
    check_against_references(leaves, bias, 5, force_fallback=force_fallback)


@pytest.mark.parametrize('force_fallback', PATHS)
def test_many_tiles_and_views(force_fallback, monkeypatch):
    """Several tiles per part and views taller than a window, so that groups and their
    boxes split (and stop at view borders) as at full size: a cheap group in the tile
    cost model makes the tiles small here."""
    from aqr_attention import grouped_route
    monkeypatch.setattr(grouped_route, 'GROUP_OVERHEAD_S', 1e-5)
    leaves, bias = make_case(5, 'transposed', nq=60, bev_shape=(30, 30), cam_shape=(3, 12, 14))
    groups = grouped_route.group_queries(bias.parts(), HEADS, DIM, bias.chunk_elements)
    bev_groups = [g for g in groups if g.part.index == 0 and g.sample == 0]
    cam_boxes = [(g.r0, g.r1) for g in groups if g.part.index == 1]
    assert len(bev_groups) > 4 and all(r0 // 12 == (r1 - 1) // 12 for r0, r1 in cam_boxes)
    check_against_references(leaves, bias, 5, force_fallback=force_fallback)


def test_autocast_and_bfloat16():
    """Under CPU autocast (what AmpOptimWrapper does on CUDA) the result is the float32 one;
    bfloat16 inputs give bfloat16 outputs close to the float64 reference."""
    leaves, bias = make_case(5, 'transposed')
    q, k, v = leaves[:3]
    plain = local_bias_attention(q, k, v, bias)
    plain_grads = torch.autograd.grad(plain.sum(), (q, k, v))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        amp = local_bias_attention(q, k, v, bias)
        amp_grads = torch.autograd.grad(amp.sum(), (q, k, v))
    torch.testing.assert_close(amp, plain, **TOL)
    for got, want in zip(amp_grads, plain_grads):
        torch.testing.assert_close(got, want, **TOL)
    qb, kb, vb = [t.detach().bfloat16().requires_grad_() for t in (q, k, v)]
    out = local_bias_attention(qb, kb, vb, bias)
    assert out.dtype == torch.bfloat16
    ref = reference_attention(qb, kb, vb, bias.to_dense())
    torch.testing.assert_close(out.double(), ref, atol=3e-2, rtol=0)
    grads = torch.autograd.grad(out.float().sum(), (qb, kb, vb))
    assert all(g.dtype == torch.bfloat16 and torch.isfinite(g).all() for g in grads)


def test_bias_changes_the_result():
    leaves, bias = make_case(5)
    q, k, v = leaves[:3]
    plain = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert not torch.allclose(local_bias_attention(q, k, v, bias), plain, atol=1e-3)
    bias.lidar_weight = torch.zeros_like(bias.lidar_weight)
    bias.camera_weight = torch.zeros_like(bias.camera_weight)
    torch.testing.assert_close(local_bias_attention(q, k, v, bias), plain, **TOL)


def test_cpu_flash_ops_available():
    assert cpu_flash_ops_available(), (
        f'torch {torch.__version__}: aten._scaled_dot_product_flash_attention_for_cpu (or its '
        'backward) is missing or its schema changed; local_bias_attention now runs the slow '
        'chunked fallback. Update aqr_attention/lse_attention.py '
        '(EXPECTED_*_SCHEMA and the calls) for this torch.')


@pytest.mark.parametrize('window_size, key', [
    (2, 'window_size'), (0, 'window_size'), (-3, 'window_size'), (3.0, 'window_size'),
    ('3', 'window_size'), (True, 'window_size'), (None, 'window_size'),
    ((3, 4), 'window_size[1]'), ((0, 3), 'window_size[0]'), ((3, False), 'window_size[1]'),
    ((3, 3, 3), 'window_size'), ((3,), 'window_size')])
def test_invalid_window_sizes(window_size, key):
    with pytest.raises(ValueError, match=key.replace('[', r'\[').replace(']', r'\]')):
        make_case(window_size)


def test_shape_mismatches_raise():
    leaves, bias = make_case(3)
    q, k, v = leaves[:3]
    with pytest.raises(ValueError, match='keys'):
        local_bias_attention(q, k[:, :, 1:], v[:, :, 1:], bias)
    with pytest.raises(ValueError, match='queries'):
        local_bias_attention(q[:, :, 1:], k, v, bias)


@pytest.mark.parametrize('force_fallback', PATHS)
def test_no_query_by_key_tensor(force_fallback):
    """Forward + backward never create a tensor anywhere near Q x K (the dense bias alone
    is Q x K per sample). Sizes: Q = 128, K = 20,000, so Q*K/4 = 640,000 elements while
    q, k, v and their gradients hold at most heads * K * d = 320,000."""
    nq, bev, cams = 128, (100, 100), (2, 50, 100)
    leaves, bias = make_case(5, 'transposed', batch=1, nq=nq, bev_shape=bev, cam_shape=cams,
                             chunk_elements=1 << 16)
    q, k, v = leaves[:3]
    n_keys = k.shape[2]
    bound = nq * n_keys // 4
    assert HEADS * n_keys * DIM < bound
    meter = LargestNewTensor()
    with meter:
        out = local_bias_attention(q, k, v, bias, force_fallback=force_fallback)
        torch.autograd.grad(out.sum(), leaves)
    assert meter.largest < bound, f'{meter.op} created {meter.largest} elements (bound {bound})'

    # the meter does see a dense method: building the dense bias alone exceeds the bound
    dense_meter = LargestNewTensor()
    with dense_meter:
        dense = bias.to_dense()
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense[:, None])
        torch.autograd.grad(out.sum(), leaves)
    assert dense_meter.largest >= nq * n_keys > bound
