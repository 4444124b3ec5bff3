"""tools/analysis/query_diagnostics.py: the attention-entropy probe against a dense
reference, and a short training run that records every probe."""
import json
import math

import numpy as np
import torch

from tests.helpers.repo import load_tool, run_tool
from tests.helpers.tiny_cmt import CONFIG, tiny_options


def numpy_entropy(module, query, key, key_padding_mask):
    """Mean over batch, heads and queries of the attention entropy / log(valid keys)."""
    def proj(lin, x):
        return x @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
    h = module.num_heads
    q, k = proj(module.q_proj, query.numpy()), proj(module.k_proj, key.numpy())
    b, nq, c = q.shape
    d = c // h
    values = []
    for bi in range(b):
        valid = ~key_padding_mask[bi].numpy()
        for hi in range(h):
            logits = q[bi, :, hi * d:(hi + 1) * d] @ k[bi, valid, hi * d:(hi + 1) * d].T / math.sqrt(d)
            p = np.exp(logits - logits.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            values.append((-(p * np.log(p)).sum(-1) / math.log(valid.sum())).mean())
    return float(np.mean(values))


def test_entropy_probe_matches_a_dense_reference_and_is_one_when_uniform():
    tool = load_tool('tools/analysis/query_diagnostics.py')
    from mmdet3d.registry import MODELS
    torch.manual_seed(0)
    attn = MODELS.build(dict(type='BiasedMultiheadAttention', embed_dims=16, num_heads=2))
    query, key = torch.randn(2, 5, 16), torch.randn(2, 9, 16) * 3
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[1, 6:] = True
    probe = tool.CrossAttentionEntropy()
    handle = attn.register_forward_hook(probe, with_kwargs=True)
    attn(query=query, key=key, value=key, key_padding_mask=mask)
    assert 0.05 < probe.value < 0.999
    assert abs(probe.value - numpy_entropy(attn, query, key, mask)) < 1e-5
    torch.nn.init.zeros_(attn.k_proj.weight)          # every key looks the same: uniform attention
    attn(query=query, key=key, value=key, key_padding_mask=mask)
    assert abs(probe.value - 1.0) < 1e-6
    handle.remove()


def test_a_short_run_records_every_probe(synthetic_root, tmp_path):
    out = tmp_path / 'diag.json'
    proc = run_tool('tools/analysis/query_diagnostics.py', CONFIG, '--seed', '3', '--epochs', '1', '--every', '2',
                    '--work-dir', str(tmp_path / 'work'), '--out', str(out), '--cfg-options',
                    *tiny_options(synthetic_root))
    records = json.loads(out.read_text())['records']
    iters = [r['iter'] for r in records]
    assert iters[0] == 0 and len(iters) >= 3 and iters == sorted(iters) and all(i % 2 == 0 for i in iters)
    for r in records:
        assert r['centre_spread_m'] > 0 and 0 < r['top_score'] <= 1 and 0 < r['attn_entropy'] <= 1
        assert r['match_dist_m'] >= 0
    assert math.isnan(records[0]['churn']) and all(0 <= r['churn'] <= 1 for r in records[1:])
    assert '| iter | centre_spread_m' in proc.stdout
