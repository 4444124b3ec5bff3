"""`CameraTokenBlock` against a float64 reference written from its weights: cross-attention,
residual, LayerNorm, FFN, residual, LayerNorm."""
import math

import torch
import torch.nn.functional as F

from plugin.models.layers import CameraTokenBlock


def _block(seed=0):
    torch.manual_seed(seed)
    block = CameraTokenBlock(embed_dims=16, num_heads=4, feedforward_channels=24).double().eval()
    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randn(2, 6, 16, generator=g, dtype=torch.float64)
    bev = torch.randn(2, 30, 16, generator=g, dtype=torch.float64)
    return block, tokens, bev


def _ffn_residual(block, x):
    """x + W2 relu(W1 x + b1) + b2, written from the FFN's two linear layers."""
    linears = [m for m in block.ffn.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2
    hidden = F.relu(F.linear(x, linears[0].weight, linears[0].bias))
    return x + F.linear(hidden, linears[1].weight, linears[1].bias)


def _attention(block, tokens, bev):
    a = block.attn
    heads, d = a.num_heads, a.head_dim

    def split(x):
        return x.view(x.shape[0], x.shape[1], heads, d).transpose(1, 2)
    q, k, v = split(a.q_proj(tokens)), split(a.k_proj(bev)), split(a.v_proj(bev))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1)
    return a.out_proj((weights @ v).transpose(1, 2).flatten(2))


def test_matches_a_post_norm_reference():
    block, tokens, bev = _block()
    ln = lambda x, norm: F.layer_norm(x, (16,), norm.weight, norm.bias, norm.eps)  # noqa: E731
    x = ln(tokens + _attention(block, tokens, bev), block.norm1)
    ref = ln(_ffn_residual(block, x), block.norm2)
    torch.testing.assert_close(block(tokens, bev), ref, atol=1e-10, rtol=0)


def test_zero_attention_leaves_the_tokens_to_the_norm_and_ffn_path():
    """A residual block: with the attention's output at zero, the BEV has no effect and the
    tokens go through LayerNorm -> FFN (+ residual) -> LayerNorm only."""
    block, tokens, bev = _block(1)
    with torch.no_grad():
        block.attn.out_proj.weight.zero_()
        block.attn.out_proj.bias.zero_()
    out = block(tokens, bev)
    x = F.layer_norm(tokens, (16,), block.norm1.weight, block.norm1.bias, block.norm1.eps)
    ref = F.layer_norm(_ffn_residual(block, x), (16,), block.norm2.weight, block.norm2.bias, block.norm2.eps)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(block(tokens, torch.randn_like(bev)), out, atol=1e-10, rtol=0)


def test_gradients_reach_tokens_bev_and_every_weight():
    block, tokens, bev = _block(2)
    block.train()
    tokens.requires_grad_(True)
    bev.requires_grad_(True)
    (block(tokens, bev) * torch.randn(2, 6, 16, dtype=torch.float64)).sum().backward()
    assert tokens.grad.abs().sum() > 0 and bev.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
