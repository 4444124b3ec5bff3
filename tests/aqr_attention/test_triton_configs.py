"""The Triton route's launch table and back-end choice (`aqr_attention/triton_configs.py`,
`backends.py`), on CPU: every configuration of the table runs numerically in Triton's
interpreter (TRITON_INTERPRET=1, set in conftest.py) against float64 dense attention, and
'auto' on a CUDA device takes the kernels only for what they support, with one warning
naming the reason otherwise."""
import warnings

import pytest
import torch

from aqr_attention import attention_backend, backends, local_bias_attention, triton_configs
from aqr_attention.triton_bias_attention import triton_bias_attention
from aqr_attention.triton_configs import CONFIGS, KernelConfig, kernel_configs, padded_head_dim
from tests.helpers.attention_cases import additive, make_case, padding_mask, reference_attention


def test_every_precision_and_head_width_has_a_configuration():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        for dim in (8, 16, 24, 32, 48, 64, 100, 128):
            cfg = kernel_configs(dtype, dim)
            assert set(cfg) == set(triton_configs.KERNELS)
            assert all(isinstance(c, KernelConfig) and c.block_q >= 16 and c.block_k >= 16 for c in cfg.values())
    assert [padded_head_dim(d) for d in (1, 16, 17, 32, 33, 128)] == [16, 16, 32, 32, 64, 128]
    with pytest.raises(ValueError, match='up to 128'):
        kernel_configs(torch.float32, 256)
    with pytest.raises(TypeError, match='complex64'):
        kernel_configs(torch.complex64, 32)


_DISTINCT = sorted({(p, d, tuple(cfg.items())) for (p, d), cfg in CONFIGS.items()})


@pytest.mark.parametrize('precision,dim,entry', _DISTINCT, ids=[f'{p}-d{d}' for p, d, _ in _DISTINCT])
def test_every_configuration_in_the_interpreter(precision, dim, entry):
    """The entry's blocks on 70 queries and 90 keys (partial blocks both ways) with a
    key-padding mask: outputs and all six gradients within 1e-5 of float64 (the
    interpreter computes half-precision entries in float32)."""
    configs = dict(entry)
    dtype = torch.float64 if precision == 'fp64' else torch.float32
    leaves, bias = make_case((5, 3), 'transposed', nq=70, dim=dim)
    leaves = [t.detach().to(dtype if t.dim() == 4 else torch.float32).requires_grad_() for t in leaves]
    q, k, v = leaves[:3]
    bias = type(bias)(bias.bev_shape, bias.cam_shape, bias.bev_center, bias.cam_center, leaves[3], leaves[4],
                      (5, 3), scale=leaves[5])
    mask = additive(padding_mask(bias, q.shape[0])).to(dtype)
    out = triton_bias_attention(q, k, v, bias, mask, configs=configs)
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    grads = torch.autograd.grad(out, leaves, go)
    ref = reference_attention(q, k, v, bias.to_dense(), mask)
    ref_grads = torch.autograd.grad(ref, leaves, go.double())
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)
    for name, got, want in zip('q k v lidar_weight camera_weight scale'.split(), grads, ref_grads):
        torch.testing.assert_close(got.double(), want.double(), atol=1e-5, rtol=1e-5,
                                   msg=lambda m: f'grad {name}: {m}')


class _OnCuda:
    """A CPU tensor that reports a CUDA device: the back-end choice reads only the
    device, dtype, shape and strides."""

    def __init__(self, x):
        self.x, self.device = x, torch.device('cuda')

    def __getattr__(self, name):
        return getattr(self.x, name)


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA GPU of a chosen compute capability, with triton installed."""
    monkeypatch.setattr(backends, '_warned', set())
    monkeypatch.setattr(backends, 'triton_available', lambda: True)

    def gpu(capability):
        monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device=None: capability)
    return gpu


def _qkv(dtype=torch.float32, dim=32, nq=10, nk=50):
    return [_OnCuda(torch.zeros(2, 4, n, dim, dtype=dtype)) for n in (nq, nk, nk)]


@pytest.mark.parametrize('capability', [(8, 0), (8, 6), (9, 0)])
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_auto_takes_triton_for_what_it_supports(fake_gpu, capability, dtype):
    fake_gpu(capability)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert backends.bias_attention_backend(*_qkv(dtype)) == 'triton'


@pytest.mark.parametrize('case,reason,forced', [
    (dict(capability=(7, 5)), 'compute capability 7.5', None),
    (dict(capability=(10, 0)), 'compute capability 10.0', None),
    (dict(dim=256), 'head width 256', None),
    (dict(nk=2 ** 22), 'int32 offsets', None),
    (dict(triton=False), 'triton is not installed', 'needs the triton package'),
])
def test_auto_falls_back_with_one_warning(fake_gpu, monkeypatch, case, reason, forced):
    """'auto' takes the PyTorch route and says why, once; forcing 'triton' is an error
    naming the reason."""
    fake_gpu(case.get('capability', (9, 0)))
    if not case.get('triton', True):
        monkeypatch.setattr(backends, 'triton_available', lambda: False)
    if 'nk' in case:   # batch 64 x 8 heads x 4M keys x 32: dK alone has 2^36 elements
        qkv = [_OnCuda(torch.zeros(1, 1, 1, 32).expand(64, 8, n, 32)) for n in (10, case['nk'], case['nk'])]
    else:
        qkv = _qkv(dim=case.get('dim', 32))
    with pytest.warns(UserWarning, match=reason) as record:
        assert backends.bias_attention_backend(*qkv) == 'torch'
        assert backends.bias_attention_backend(*qkv) == 'torch'
    assert len([w for w in record if reason in str(w.message)]) == 1
    with attention_backend('triton'), pytest.raises(RuntimeError, match=forced or reason):
        backends.bias_attention_backend(*qkv)


@pytest.mark.parametrize('dtype', [torch.complex64, torch.int32, torch.float8_e4m3fn])
def test_unsupported_dtypes_are_errors_naming_them(dtype):
    leaves, bias = make_case(3)
    q, k, v = (t.detach() for t in leaves[:3])
    for name, args in (('q', (q.to(dtype), k, v)), ('v', (q, k, v.to(dtype)))):
        with pytest.raises(TypeError, match=f'{name} is {dtype}'):
            local_bias_attention(*args, bias)
    from aqr_attention import local_window_attention
    with pytest.raises(TypeError, match=f'k is {dtype}'):
        local_window_attention(q, k.to(dtype), v, bias.parts())
