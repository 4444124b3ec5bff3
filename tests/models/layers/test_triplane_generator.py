"""Triplane generator: output shape at the paper sizes, the SDPA path against a
plain-softmax float64 reference written from the weights, no tokens x tokens tensor,
gradients, autocast, activation checkpointing and clear errors."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

import plugin  # noqa: F401
from mmdet3d.registry import MODELS
from plugin.models.layers.biased_attention import BiasedMultiheadAttention
from tests.helpers.attention_cases import LargestNewTensor


def generator(**kw):
    init_default_scope('mmdet3d')
    cfg = dict(type='TriplaneGenerator', context_dim=12, num_layers=2, internal_resolution=4,
               triplane_resolution=8, d_model=32, head_dim=8, output_channels=6, ffn_channels=40,
               upsampler=dict(type='TriplaneUpsampler', mid_channels=16))
    cfg.update(kw)
    gen = MODELS.build(cfg)
    gen.init_weights()
    return gen


def test_default_sizes_give_three_80x128x128_planes():
    gen = generator(context_dim=32, num_layers=1, internal_resolution=64, triplane_resolution=128, d_model=512,
                    head_dim=64, output_channels=80, ffn_channels=1024,
                    upsampler=dict(type='TriplaneUpsampler', mid_channels=128)).eval()
    assert gen.num_heads == 8 and gen.tokens.shape == (3, 64 * 64, 512)
    with torch.no_grad():
        planes = gen(torch.randn(1, 10, 32))
    assert planes.shape == (1, 3, 80, 128, 128) and torch.isfinite(planes).all()


@pytest.mark.parametrize('num_heads', [None, 3])
def test_matches_plain_softmax_reference(num_heads):
    """The generator in float64 equals the same layers written out with an explicit
    softmax(q k^T / sqrt(d)) v, with num_heads * head_dim == d_model (4 x 8) and != (3 x 8)."""
    torch.manual_seed(0)
    gen = generator(num_heads=num_heads).double().eval()
    with torch.no_grad():
        for p in gen.parameters():   # non-trivial norms and biases
            p.add_(0.05 * torch.randn_like(p))
    context = torch.randn(2, 7, 12, dtype=torch.float64)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[1, 4:] = True

    def attention(mod, x, kv, pad=None):
        h, d = mod.num_heads, mod.head_dim
        q = (x @ mod.q_proj.weight.T + mod.q_proj.bias).unflatten(-1, (h, d)).transpose(1, 2)
        k = (kv @ mod.k_proj.weight.T + mod.k_proj.bias).unflatten(-1, (h, d)).transpose(1, 2)
        v = (kv @ mod.v_proj.weight.T + mod.v_proj.bias).unflatten(-1, (h, d)).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], -math.inf)
        out = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)
        return out @ mod.out_proj.weight.T + mod.out_proj.bias

    def norm(mod, x):
        mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + mod.eps) * mod.weight + mod.bias

    with torch.no_grad():
        r = gen.internal_resolution
        c = (torch.arange(r, dtype=torch.float64) + 0.5) / r
        rows, cols = torch.meshgrid(c, c, indexing='ij')
        sine = plugin.models.utils.sine_embedding(torch.stack([cols, rows], -1).view(-1, 2), gen.d_model // 2)
        x = (gen.tokens + gen.plane_embed[:, None] + (sine @ gen.pos_proj.weight.T + gen.pos_proj.bias)[None])
        x = x.flatten(0, 1)[None].expand(2, -1, -1)
        ctx = norm(gen.context_norm, context)
        for layer in gen.layers:
            x = x + attention(layer.self_attn, norm(layer.norm_self, x), norm(layer.norm_self, x))
            x = x + attention(layer.cross_attn, norm(layer.norm_cross, x), ctx, mask)
            f = layer.ffn
            hid = F.gelu(norm(layer.norm_ffn, x) @ f[0].weight.T + f[0].bias)
            x = x + hid @ f[3].weight.T + f[3].bias
        x = norm(gen.out_norm, x).view(6, r, r, -1).permute(0, 3, 1, 2)
        expected = gen.upsampler(x).view(2, 3, 6, 8, 8)
        got = gen(context, mask)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_no_tokens_by_tokens_tensor_at_12288_tokens():
    """Forward + backward at 3 x 64 x 64 tokens never creates a tensor of 12,288^2 / 16
    elements (the attention matrix would be 12,288^2 per head); the meter does see
    nn.MultiheadAttention's matrix."""
    gen = generator(context_dim=8, num_layers=1, internal_resolution=64, triplane_resolution=64, d_model=64,
                    head_dim=64, output_channels=4, ffn_channels=64,
                    upsampler=dict(type='TriplaneUpsampler', mid_channels=8))
    n = 3 * 64 * 64
    meter = LargestNewTensor()
    with meter:
        gen(torch.randn(1, 5, 8)).square().mean().backward()
    assert meter.largest < n * n // 16, (meter.largest, meter.op)
    assert gen.tokens.grad is not None and gen.tokens.grad.abs().sum() > 0
    mha = torch.nn.MultiheadAttention(16, 1, batch_first=True)
    x = torch.randn(1, 1024, 16)
    dense = LargestNewTensor()
    with dense:
        mha(x, x, x)
    assert dense.largest >= 1024 * 1024


def test_gradients_reach_tokens_embeddings_and_context():
    gen = generator().train()
    context = torch.randn(2, 5, 12, requires_grad=True)
    gen(context).square().mean().backward()
    for name in ('tokens', 'plane_embed'):
        grad = getattr(gen, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert gen.pos_proj.weight.grad.abs().sum() > 0
    assert context.grad.abs().sum() > 0


def test_runs_under_cpu_autocast_close_to_float32():
    gen = generator().eval()
    context = torch.randn(2, 5, 12)
    with torch.no_grad():
        ref = gen(context)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = gen(context)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_activation_checkpointing_gives_the_same_values_and_gradients():
    torch.manual_seed(0)
    plain = generator().train()
    ckpt = generator(with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    context = torch.randn(2, 5, 12)
    outs = []
    for gen in (plain, ckpt):
        out = gen(context)
        out.square().mean().backward()
        outs.append(out)
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(plain.tokens.grad, ckpt.tokens.grad)
    torch.testing.assert_close(plain.layers[0].self_attn.q_proj.weight.grad,
                               ckpt.layers[0].self_attn.q_proj.weight.grad)


@pytest.mark.parametrize('kw, match', [(dict(d_model=30, head_dim=8), 'head_dim'),
                                       (dict(triplane_resolution=2), 'triplane_resolution')])
def test_invalid_sizes_name_the_key(kw, match):
    with pytest.raises(ValueError, match=match):
        generator(**kw)


def test_wrong_context_width_is_a_clear_error():
    with pytest.raises(ValueError, match='context_dim=12'):
        generator()(torch.randn(1, 3, 10))


def test_fully_masked_context_gives_zero_attention_not_nan():
    """The generator's cross-attention (head width 4 x 2 heads over d_model 8, context width
    6): a sample whose context is all padding gets no attention term, only the residual and
    the output projection's bias."""
    attn = BiasedMultiheadAttention(8, 2, head_dim=4, key_dims=6)
    q, kv = torch.randn(2, 5, 8, requires_grad=True), torch.randn(2, 3, 6)
    mask = torch.tensor([[True, True, True], [False, True, False]])
    zero = torch.zeros_like(q)
    out = attn(q, kv, kv, identity=zero, key_padding_mask=mask)
    torch.testing.assert_close(out[0], attn.out_proj.bias.expand(5, 8), atol=0, rtol=0)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(q.grad).all()
    masked_keys_ignored = attn(q[1:], kv[1:, [0, 2]], kv[1:, [0, 2]], identity=zero[1:])
    torch.testing.assert_close(out[1:], masked_keys_ignored)
