"""BiasedMultiheadAttention and the PETR decoder against a plain softmax reference."""
import math

import pytest
import torch

from plugin.models.layers.key_layout import KeyLayout
from plugin.models.layers import BiasedMultiheadAttention, CmtTransformer


def reference(attn, query, key, value, query_pos=None, key_pos=None, mask=None, bias=None):
    """softmax(QK^T / sqrt(d) + bias + mask) V, written out with plain tensor ops."""
    q_in = query if query_pos is None else query + query_pos
    k_in = key if key_pos is None else key + key_pos
    h = attn.num_heads
    b, nq, c = query.shape
    d = c // h
    q = attn.q_proj(q_in).view(b, nq, h, d).transpose(1, 2)
    k = attn.k_proj(k_in).view(b, -1, h, d).transpose(1, 2)
    v = attn.v_proj(value).view(b, -1, h, d).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if bias is not None:
        scores = scores + (bias[:, None] if bias.dim() == 3 else bias)
    if mask is not None:
        scores = scores.masked_fill(mask, float('-inf'))
    out = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, nq, c)
    return query + attn.out_proj(out)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    attn = BiasedMultiheadAttention(32, 4).eval()
    q = torch.randn(2, 7, 32)
    k = torch.randn(2, 11, 32)
    v = torch.randn(2, 11, 32)
    return attn, q, k, v


def test_plain_and_positional(setup):
    attn, q, k, v = setup
    qp, kp = torch.randn_like(q), torch.randn_like(k)
    torch.testing.assert_close(attn(q, k, v), reference(attn, q, k, v))
    torch.testing.assert_close(attn(q, k, v, query_pos=qp, key_pos=kp),
                               reference(attn, q, k, v, qp, kp))


@pytest.mark.parametrize('bias_shape', [(2, 7, 11), (2, 4, 7, 11)])
def test_dense_bias_and_its_gradient(setup, bias_shape):
    attn, q, k, v = setup
    bias = torch.randn(*bias_shape, requires_grad=True)
    out = attn(q, k, v, attn_bias=bias)
    torch.testing.assert_close(out, reference(attn, q, k, v, bias=bias))
    ref_grad, = torch.autograd.grad(reference(attn, q, k, v, bias=bias).sum(), bias)
    grad, = torch.autograd.grad(out.sum(), bias)
    torch.testing.assert_close(grad, ref_grad)
    assert not torch.allclose(out, attn(q, k, v))  # the bias changes the result


def test_masks_are_honoured(setup):
    attn, q, k, v = setup
    mask = torch.rand(7, 11) < 0.4
    mask[:, 0] = False  # no row fully masked
    torch.testing.assert_close(attn(q, k, v, attn_mask=mask),
                               reference(attn, q, k, v, mask=mask[None, None]))
    pad = torch.zeros(2, 11, dtype=torch.bool)
    pad[1, 5:] = True
    torch.testing.assert_close(attn(q, k, v, key_padding_mask=pad),
                               reference(attn, q, k, v, mask=pad[:, None, None, :]))
    bias = torch.randn(2, 7, 11)
    torch.testing.assert_close(attn(q, k, v, attn_mask=mask, key_padding_mask=pad, attn_bias=bias),
                               reference(attn, q, k, v, bias=bias,
                                         mask=mask[None, None] | pad[:, None, None, :]))


def test_fully_masked_query_gives_zeros_not_nan(setup):
    attn, q, k, v = setup
    pad = torch.zeros(2, 11, dtype=torch.bool)
    pad[0] = True  # sample 0 has no valid key at all
    out = attn(q, k, v, key_padding_mask=pad)
    assert torch.isfinite(out).all()
    # no attention contribution: only the residual and the output projection bias
    torch.testing.assert_close(out[0], q[0] + attn.out_proj.bias)


def test_compact_bias_object_is_delegated(setup):
    attn, q, k, v = setup
    calls = []

    class Compact:
        def attend(self, qh, kh, vh, mask):
            calls.append((qh.shape, kh.shape, mask))
            return torch.zeros_like(qh)

    out = attn(q, k, v, attn_bias=Compact())
    assert calls and calls[0][0] == (2, 4, 7, 8) and calls[0][1] == (2, 4, 11, 8)
    torch.testing.assert_close(out, q + attn.out_proj.bias)
    with pytest.raises(TypeError, match='attend'):
        attn(q, k, v, attn_bias=[1, 2])
    # the key padding reaches attend() as given: bool [B, K]
    pad = torch.zeros(2, 11, dtype=torch.bool)
    pad[1, -3:] = True
    attn(q, k, v, key_padding_mask=pad, attn_bias=Compact())
    assert calls[-1][2] is pad and calls[0][2] is None
    with pytest.raises(ValueError, match='key padding mask only'):
        attn(q, k, v, attn_mask=torch.zeros(7, 11, dtype=torch.bool), attn_bias=Compact())


def test_attention_dropout_with_a_compact_bias_is_refused_not_ignored(setup):
    attn, q, k, v = setup

    class Compact:
        def attend(self, qh, kh, vh, mask):
            return torch.zeros_like(qh)

    attn.attn_drop = 0.1
    attn.train()
    with pytest.raises(ValueError, match='cross_attn_cfg.attn_drop'):
        attn(q, k, v, attn_bias=Compact())
    attn.eval()                                  # no dropout at inference: nothing to refuse
    torch.testing.assert_close(attn(q, k, v, attn_bias=Compact()), q + attn.out_proj.bias)


def _transformer(num_layers=2, with_cp=False):
    attn = dict(type='BiasedMultiheadAttention', embed_dims=32, num_heads=4)
    layer = dict(type='PETRTransformerDecoderLayer', self_attn_cfg=attn, cross_attn_cfg=attn,
                 ffn_cfg=dict(embed_dims=32, feedforward_channels=64), with_cp=with_cp)
    return CmtTransformer(decoder=dict(type='PETRTransformerDecoder', layer_cfg=layer,
                                       num_layers=num_layers))


def test_transformer_passes_the_bias_to_every_cross_attention():
    import plugin  # noqa: F401  (registers the layers)
    torch.manual_seed(0)
    tf = _transformer().eval()
    seen = []
    for layer in tf.decoder.layers:
        layer.cross_attn.register_forward_hook(
            lambda m, args, kwargs, out: seen.append(kwargs.get('attn_bias')), with_kwargs=True)
    bev, img = torch.randn(1, 32, 4, 5), torch.randn(1, 2, 32, 3, 3)
    query, qpos = torch.randn(1, 6, 32), torch.randn(1, 6, 32)
    bev_pos, img_pos = torch.randn(1, 20, 32), torch.randn(1, 18, 32)
    bias = torch.randn(1, 6, 38)
    memory = tf.memory(bev, img, bev_pos, img_pos)
    out = tf(query, qpos, memory, attn_bias=bias)
    assert out.shape == (2, 1, 6, 32) and len(seen) == 2 and all(b is bias for b in seen)
    assert not torch.allclose(out, tf(query, qpos, memory))
    # key order: BEV row-major first, then views (view-major, row-major)
    assert memory.layout == KeyLayout((4, 5), (2, 3, 3))
    mem = memory.layout.flatten(bev, img)
    torch.testing.assert_close(mem[0, 1 * 5 + 2], bev[0, :, 1, 2])
    torch.testing.assert_close(mem[0, 20 + 1 * 9 + 2 * 3 + 1], img[0, 1, :, 2, 1])
    torch.testing.assert_close(memory.feat, mem)
    # image padding lands on the image keys, after the 20 BEV keys
    pad = torch.zeros(1, 18, dtype=torch.bool)
    pad[0, 5] = True
    kpm = tf.memory(bev, img, bev_pos, img_pos, pad).key_padding_mask
    assert kpm.shape == (1, 38) and kpm[0, 25] and kpm.sum() == 1


def test_checkpointed_layers_match():
    import plugin  # noqa: F401
    torch.manual_seed(0)
    plain = _transformer()
    cp = _transformer(with_cp=True)
    cp.load_state_dict(plain.state_dict())
    plain.train(), cp.train()
    memory = plain.memory(torch.randn(1, 32, 4, 5), torch.randn(1, 2, 32, 3, 3), torch.randn(1, 20, 32),
                          torch.randn(1, 18, 32))
    args = [torch.randn(1, 6, 32, requires_grad=True), torch.randn(1, 6, 32), memory]
    torch.testing.assert_close(cp(*args), plain(*args))
    g1, = torch.autograd.grad(plain(*args).sum(), args[0])
    g2, = torch.autograd.grad(cp(*args).sum(), args[0])
    torch.testing.assert_close(g1, g2)
