"""Triplane generator: output shape at the paper sizes, the SDPA path against a
plain-softmax float64 reference written from the weights, no tokens x tokens tensor at
12,288 tokens, the sampling helper at grid points, gradients, autocast, checkpointing,
the neck's context / XY fusion, the head's query enrichment and the CPU AMP wrapper."""
import math

import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from mmengine.registry import init_default_scope
from test_fusion_necks import IMG_C, IMG_H, IMG_W, STRIDE, metas
from test_local_bias_attention import _LargestNewTensor

import plugin  # noqa: F401
from mmdet3d.registry import MODELS
from plugin.engine.device_amp_optim_wrapper import cpu_has_native_bf16
from plugin.models.layers.sdpa_attention import SDPAttention
from plugin.models.utils.triplane_sampling import sample_triplane

PC_RANGE = [-20.0, -20.0, -3.0, 20.0, 20.0, 3.0]
TRIPLANE_CONFIG = f'{REPO}/configs/synthetic/cmt-triplane_pillar080_r18-256x144_1xb2-10e_synthetic-nus-3d.py'


def generator(**kw):
    init_default_scope('mmdet3d')
    cfg = dict(type='TriplaneGenerator', context_dim=12, num_layers=2, internal_resolution=4,
               triplane_resolution=8, d_model=32, head_dim=8, output_channels=6, ffn_channels=40,
               upsampler=dict(type='TriplaneUpsampler', mid_channels=16))
    cfg.update(kw)
    gen = MODELS.build(cfg)
    gen.init_weights()
    return gen


# ----------------------------------------------------------------------------- generator

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
    meter = _LargestNewTensor()
    with meter:
        gen(torch.randn(1, 5, 8)).square().mean().backward()
    assert meter.largest < n * n // 16, (meter.largest, meter.op)
    assert gen.tokens.grad is not None and gen.tokens.grad.abs().sum() > 0
    mha = torch.nn.MultiheadAttention(16, 1, batch_first=True)
    x = torch.randn(1, 1024, 16)
    dense = _LargestNewTensor()
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
    attn = SDPAttention(8, 2, 4, key_dim=6)
    q, kv = torch.randn(2, 5, 8, requires_grad=True), torch.randn(2, 3, 6)
    mask = torch.tensor([[True, True, True], [False, True, False]])
    out = attn(q, kv, mask)
    assert torch.equal(out[0], torch.zeros_like(out[0])) and torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(q.grad).all()
    torch.testing.assert_close(out[1:], attn(q[1:], kv[1:, [0, 2]]))   # masked keys are ignored


# ----------------------------------------------------------------------------- sampling

def test_sampling_returns_plane_values_at_cell_centres():
    g = torch.Generator().manual_seed(0)
    t, c = 8, 5
    planes = torch.randn(2, 3, c, t, t, generator=g)
    idx = torch.randint(0, t, (2, 9, 3), generator=g)                 # (ix, iy, iz) per point
    points = (idx.float() + 0.5) / t
    ix, iy, iz = idx.unbind(-1)
    b = torch.arange(2)[:, None]
    xy = planes[:, 0].permute(0, 2, 3, 1)[b, iy, ix]                   # rows y, columns x
    xz = planes[:, 1].permute(0, 2, 3, 1)[b, iz, ix]                   # rows z, columns x
    yz = planes[:, 2].permute(0, 2, 3, 1)[b, iz, iy]                   # rows z, columns y
    torch.testing.assert_close(sample_triplane(planes, points), xy + xz + yz)
    torch.testing.assert_close(sample_triplane(planes, points, 'concat'), torch.cat([xy, xz, yz], -1))
    # bilinear between two centres along x; the border cell beyond the range
    half = points.clone()
    half[..., 0] = (1.0 + 0.5) / t
    left, right = points.clone(), points.clone()
    left[..., 0], right[..., 0] = 0.5 / t, 1.5 / t
    mid = half.clone()
    mid[..., 0] = 1.0 / t
    torch.testing.assert_close(sample_triplane(planes, mid),
                               0.5 * (sample_triplane(planes, left) + sample_triplane(planes, right)))
    outside = left.clone()
    outside[..., 0] = -0.3
    torch.testing.assert_close(sample_triplane(planes, outside), sample_triplane(planes, left))


def test_sampling_checks_its_inputs():
    with pytest.raises(ValueError, match='planes'):
        sample_triplane(torch.zeros(1, 2, 4, 8, 8), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match='reduce'):
        sample_triplane(torch.zeros(1, 3, 4, 8, 8), torch.zeros(1, 3, 3), 'mean')


# ----------------------------------------------------------------------------- neck

def neck(**kw):
    init_default_scope('mmdet3d')
    cfg = dict(type='TriplaneNeck', pc_range=PC_RANGE, bev_channels=16, img_channels=IMG_C, bev_tokens=(3, 3),
               cam_tokens=(2, 2), generator=dict(type='TriplaneGenerator', context_dim=12, num_layers=1,
                                                 internal_resolution=4, triplane_resolution=8, d_model=32,
                                                 head_dim=8, output_channels=6, ffn_channels=32,
                                                 upsampler=dict(type='TriplaneUpsampler', mid_channels=8)))
    cfg.update(kw)
    mod = MODELS.build(cfg)
    mod.init_weights()
    return mod


def test_neck_is_identity_on_bev_at_init_and_fuses_the_xy_plane():
    m = neck()
    bev = torch.randn(2, 16, 10, 12)
    img = torch.randn(2, 3, IMG_C, IMG_H // STRIDE, IMG_W // STRIDE)
    out, planes = m(bev, img, metas(2))
    assert planes.shape == (2, 3, 6, 8, 8) and torch.equal(out, bev)
    assert m.context(bev, img, metas(2)).shape == (2, 9 + 3 * 4, 12)
    with torch.no_grad():   # an identity 1x1 conv on the first 6 channels: the XY plane, resized
        m.bev_fuse.weight.zero_()
        m.bev_fuse.weight[:6, :, 0, 0] = torch.eye(6)
    out, planes = m(bev, img, metas(2))
    xy = F.interpolate(planes[:, 0], size=(10, 12), mode='bilinear', align_corners=False)
    torch.testing.assert_close(out[:, :6] - bev[:, :6], xy)
    torch.testing.assert_close(out[:, 6:], bev[:, 6:])


def test_neck_runs_with_one_modality_and_blank_cameras():
    lidar_only = neck(img_channels=None)
    bev = torch.randn(1, 16, 10, 12)
    out, planes = lidar_only(bev, None, metas(1))
    assert planes.shape == (1, 3, 6, 8, 8)
    camera_only = neck(bev_channels=None, fuse_bev=False)
    blank = torch.zeros(1, 3, IMG_C, IMG_H // STRIDE, IMG_W // STRIDE)
    out, planes = camera_only(None, blank, metas(1))
    assert out is None and torch.isfinite(planes).all()
    with pytest.raises(ValueError, match='fuse_bev'):
        neck(bev_channels=None)
    with pytest.raises(ValueError, match='lidar2img'):
        neck()(bev, blank, [dict(img_shape=(IMG_H, IMG_W))])


def test_camera_context_follows_the_camera_pose():
    """Same image features, cameras turned: the camera tokens change, the BEV ones do not."""
    m = neck()
    bev = torch.randn(1, 16, 10, 12)
    img = torch.randn(1, 3, IMG_C, IMG_H // STRIDE, IMG_W // STRIDE)
    a = m.context(bev, img, metas(1))
    b = m.context(bev, img, metas(1, yaws=(30.0, 120.0, 210.0)))
    torch.testing.assert_close(a[:, :9], b[:, :9])
    assert (a[:, 9:] - b[:, 9:]).abs().max() > 1e-4


# ----------------------------------------------------------------------------- head + detector

def _synthetic_model():
    from mmengine.config import Config
    init_default_scope('mmdet3d')
    return Config.fromfile(TRIPLANE_CONFIG)


def test_config_mismatches_are_clear_errors():
    cfg = _synthetic_model()
    no_neck = cfg.model.copy()
    no_neck.pop('triplane')
    with pytest.raises(ValueError, match='model.triplane'):
        MODELS.build(no_neck)
    cfg.model.pts_bbox_head.triplane_cfg = dict(in_channels=16)
    with pytest.raises(ValueError, match='output_channels'):
        MODELS.build(cfg.model)


def test_head_query_enrichment_starts_at_zero_then_reads_the_planes():
    cfg = _synthetic_model()
    head_cfg = cfg.model.pts_bbox_head
    head_cfg.update(num_query=20, dn_cfg=None, query_content='zeros', aux_heatmap_cfg=None)
    head_cfg.transformer.decoder.num_layers = 1
    torch.manual_seed(0)
    head = MODELS.build(head_cfg)
    head.init_weights()
    head.eval()
    bev = torch.randn(1, 256, 16, 16)
    img = torch.randn(1, 3, 128, IMG_H // STRIDE, IMG_W // STRIDE)
    planes = torch.randn(1, 3, 32, 8, 8)
    with torch.no_grad():
        base, _ = head(bev, img, metas(1))
        same, _ = head(bev, img, metas(1), triplane=planes)
        torch.testing.assert_close(same[0]['cls'], base[0]['cls'])
        head.triplane_query[-1].weight.normal_()
        moved, _ = head(bev, img, metas(1), triplane=planes)
    assert (moved[0]['cls'] - base[0]['cls']).abs().max() > 1e-3


NATIVE_BF16 = pytest.mark.skipif(
    not cpu_has_native_bf16(),
    reason='this CPU emulates bfloat16 (~100x slower than float32): the numerics are checked on small modules')


@NATIVE_BF16
def test_triplane_detector_trains_on_a_fixed_batch_under_bf16_autocast(synthetic_root):
    """The synthetic triplane model: losses go down on one batch under CPU bf16 autocast,
    and the gradients reach the triplane tokens (through the zero-initialised BEV fusion
    and query layers, once their first update has moved them)."""
    from test_cmt_integration import fit_fixed_batch, tiny_cfg
    seen = []

    def tokens_get_gradient(model, step):
        if step == 1:
            seen.append(float(model.triplane.generator.tokens.grad.abs().sum()))

    history = fit_fixed_batch(tiny_cfg(synthetic_root, TRIPLANE_CONFIG), 30, torch.bfloat16, tokens_get_gradient)
    assert seen and seen[0] > 0
    assert min(history[-5:]) < 0.7 * history[0], history


# ----------------------------------------------------------------------------- AMP wrapper

@pytest.mark.parametrize('native', [True, False], ids=['native_bf16', 'emulated_bf16'])
def test_device_amp_optim_wrapper_autocasts_bf16_on_cpu(native, monkeypatch):
    """bfloat16 autocast on a CPU that has it natively; float32 and one warning naming the
    CPU capability on one that would emulate it."""
    from mmdet3d.registry import OPTIM_WRAPPERS
    from plugin.engine import device_amp_optim_wrapper
    monkeypatch.setattr(device_amp_optim_wrapper, 'cpu_has_native_bf16', lambda: native)
    init_default_scope('mmdet3d')
    model = torch.nn.Linear(4, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        wrapper = OPTIM_WRAPPERS.build(dict(type='DeviceAmpOptimWrapper',
                                            optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    messages = [str(w.message) for w in caught if 'DeviceAmpOptimWrapper' in str(w.message)]
    assert len(messages) == (0 if native else 1)
    if not native:
        assert torch.backends.cpu.get_cpu_capability() in messages[0] and 'float32' in messages[0]
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    wrapper.update_params(out.float().square().mean())
    assert not torch.equal(model.weight, before)
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    wrapper.load_state_dict(dict(state, loss_scaler={}))   # a GPU run's checkpoint loads
    with pytest.raises(ValueError, match='bfloat16'):
        OPTIM_WRAPPERS.build(dict(type='DeviceAmpOptimWrapper', dtype='float16',
                                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))


def test_triplane_config_trains_and_tests_through_the_tools(synthetic_root, tmp_path):
    """One epoch of the synthetic triplane config through tools/train.py (mixed precision by
    its DeviceAmpOptimWrapper, resumable checkpoint), then tools/test.py: nuScenes metrics."""
    from conftest import run_tool
    from test_cmt_integration import _metrics, tiny_options
    work = str(tmp_path)
    train = run_tool('tools/train.py', TRIPLANE_CONFIG, '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1',
                     'train_cfg.val_interval=100', *tiny_options(synthetic_root))
    assert 'Epoch(train) [1]' in train.stdout + train.stderr
    ckpt = torch.load(f'{work}/epoch_1.pth', map_location='cpu', weights_only=False)
    assert any(k.startswith('triplane.generator.tokens') for k in ckpt['state_dict'])
    test = run_tool('tools/test.py', TRIPLANE_CONFIG, f'{work}/epoch_1.pth', '--work-dir', work,
                    '--cfg-options', *tiny_options(synthetic_root))
    assert {'mAP', 'NDS'} <= set(_metrics(test.stdout + test.stderr))
