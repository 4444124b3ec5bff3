"""The compiled CPU window kernel (aqr_attention/csrc/window_attention_cpu.cpp):
that it is the route CPU tensors take, and that it agrees with the pure-PyTorch grouped
route on a case with many views, border windows, masking and large windows. Exactness
against the dense references is in test_local_bias_attention.py /
test_local_window_attention.py, which run every test through both routes."""
import sys

import pytest
import torch

from aqr_attention import attention_backend, local_bias_attention, local_window_attention, window_attention_cpu
from tests.helpers.attention_cases import make_case


def test_cpu_takes_the_kernel_without_grouping(monkeypatch):
    assert window_attention_cpu.kernel_available(), window_attention_cpu.IMPORT_ERROR
    leaves, bias = make_case(5, 'transposed')
    q, k, v = leaves[:3]

    def no_grouping(*args, **kwargs):
        raise AssertionError('the kernel route must not group queries')

    monkeypatch.setattr(sys.modules['aqr_attention.grouped_route'], 'group_queries', no_grouping)
    out = local_bias_attention(q, k, v, bias)
    torch.autograd.grad(out.sum(), leaves)
    out = local_window_attention(q, k, v, bias.parts())
    torch.autograd.grad(out.sum(), (q, k, v))
    with attention_backend('torch'), pytest.raises(AssertionError, match='must not group'):
        local_bias_attention(q, k, v, bias)


@pytest.mark.parametrize('window_size', [(25, 9), 15])
def test_kernel_matches_grouped_route(window_size):
    leaves, bias = make_case(window_size, 'transposed', batch=2, nq=70, bev_shape=(32, 30),
                             cam_shape=(4, 11, 20), seed=3)
    q, k, v = leaves[:3]
    # image-padding style key mask: the last columns of every view are hidden
    mask = torch.zeros(2, k.shape[2], dtype=torch.bool)
    mask[1, 32 * 30:].view(4, 11, 20)[..., 16:] = True
    go = torch.randn(q.shape, generator=torch.Generator().manual_seed(5))

    def run(fn):
        out = fn()
        return [out] + list(torch.autograd.grad(out, leaves if fn is biased else (q, k, v), go))

    def biased():
        return local_bias_attention(q, k, v, bias, mask)

    def local():
        return local_window_attention(q, k, v, bias.parts(), mask)

    for fn in (biased, local):
        kernel = run(fn)
        with attention_backend('torch'):
            grouped = run(fn)
        for a, b in zip(kernel, grouped):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
