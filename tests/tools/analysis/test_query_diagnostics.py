"""tools/analysis/query_diagnostics.py: the attention-entropy probe against a dense
reference, and a short training run that records every probe."""
import json
import math

import numpy as np
import torch

from tests.helpers.repo import load_tool, run_tool
from tests.helpers.tiny_cmt import CONFIG, tiny_options


def numpy_entropy(module, query, key, key_padding_mask, bias=None):
    """Mean over batch, heads and queries of the attention entropy / log(valid keys), with an
    additive bias [B, Q, K]."""
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
            if bias is not None:
                logits = logits + bias[bi][:, valid]
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
    # an attention bias (AQR's) is part of the attention the probe measures
    bias = torch.randn(2, 5, 9) * 4
    attn(query=query, key=key, value=key, key_padding_mask=mask, attn_bias=bias)
    assert abs(probe.value - numpy_entropy(attn, query, key, mask, bias.numpy())) < 1e-5

    class Compact:   # a compact bias: the probe densifies it, the attention calls attend()
        def to_dense(self):
            return bias

        def attend(self, q, k, v, mask=None):
            return torch.zeros_like(q)
    attn(query=query, key=key, value=key, key_padding_mask=mask, attn_bias=Compact())
    assert abs(probe.value - numpy_entropy(attn, query, key, mask, bias.numpy())) < 1e-5
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


def test_churn_is_zero_for_an_unchanged_model_and_counts_moved_matches(synthetic_root):
    import logging
    from types import SimpleNamespace

    from mmengine.dataset import pseudo_collate

    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
    from tests.helpers.tiny_cmt import tiny_cfg
    register_all_modules(init_default_scope=True)
    tool = load_tool('tools/analysis/query_diagnostics.py')
    cfg = tiny_cfg(synthetic_root)
    cfg.model.pts_bbox_head.update(query_generator=None, learned_queries=None)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    hook = tool.QueryDiagnosticsHook()
    hook.batch = pseudo_collate([dataset[0], dataset[1]])
    runner = SimpleNamespace(model=model, logger=logging.getLogger('query_diagnostics_test'))
    hook.probe(runner, 0)
    hook.probe(runner, 1)
    assert math.isnan(hook.records[0]['churn']) and hook.records[1]['churn'] == 0.0
    assert hook.records[0]['centre_spread_m'] == hook.records[1]['centre_spread_m'] > 0
    # every reference point moved by a quarter of the map: every match lands in another cell
    with torch.no_grad():
        ref = model.pts_bbox_head.reference_points.weight
        ref[:, 0] = (ref[:, 0] + 0.25) % 1.0
    hook.probe(runner, 2)
    assert hook.records[2]['churn'] > 0.9
    assert model.training                                # the probe leaves the mode as it found it
