"""Parity of the CMT head with the official implementation (github.com/junjie18/CMT): its
embeddings, depth bins, task heads, box code order, loss normalisation and DN groups,
checked against hand-computed values from the official formulas, and the conversion of an
official checkpoint (tests/official_cmt_reference.py is the independent reference)."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers.official_checkpoints import V99, official_vovnet_shapes, random_state_dict
from tests.helpers.official_cmt_reference import OFFICIAL_CLASSES, official_head_predict, official_head_state, pos2embed
from tests.helpers.repo import REPO, load_tool

R50 = 'configs/cmt/cmt_voxel0100_r50-800x320_8xb4-cyclic-20e_nus-3d.py'
VOV = 'configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'
PC = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]


def _registry():
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    from mmdet3d.registry import MODELS
    return MODELS


def _cfg(path):
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, path))


def _small_head(**overrides):
    """A CMT head with the official defaults at toy sizes (2 layers, 32 channels, 20 queries)."""
    MODELS = _registry()
    attn = dict(type='BiasedMultiheadAttention', embed_dims=32, num_heads=4)
    cfg = dict(type='CmtHead', class_names=list(OFFICIAL_CLASSES), pc_range=PC, in_channels_bev=16,
               in_channels_img=32, embed_dims=32, num_query=20, depth_num=8,
               transformer=dict(type='CmtTransformer', decoder=dict(
                   type='PETRTransformerDecoder', num_layers=2,
                   layer_cfg=dict(type='PETRTransformerDecoderLayer', self_attn_cfg=attn, cross_attn_cfg=attn,
                                  ffn_cfg=dict(embed_dims=32, feedforward_channels=64)))),
               bbox_coder=dict(type='NMSFreeCoder', max_num=50, num_classes=10))
    cfg.update(overrides)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def test_bev_embedding_is_official_pos2embed():
    from plugin.models.utils import BEVPositionEmbedding, sine_embedding
    pos = torch.rand(7, 2)
    np.testing.assert_allclose(sine_embedding(pos[:, [1, 0]], 256, frequencies='cmt').numpy(),
                               pos2embed(pos, 256).numpy(), atol=1e-6)
    emb = BEVPositionEmbedding(256)
    assert emb.mlp[0].in_features == 512                       # 256 sine features per axis
    ref = F.linear(F.relu(emb.mlp[0](pos2embed(pos, 256))), emb.mlp[2].weight, emb.mlp[2].bias)
    np.testing.assert_allclose(emb(pos).detach().numpy(), ref.detach().numpy(), atol=1e-5)


def test_depth_bins_are_official_uniform_bins():
    from plugin.models.utils import CameraRayEmbedding
    emb = CameraRayEmbedding(256, PC, depth_num=64)
    np.testing.assert_allclose(emb.depths.numpy(), [1 + i * 53 / 64 for i in range(64)], rtol=1e-6)


def test_layerwise_task_head_is_one_mlp_per_decoder_layer():
    from plugin.models.dense_heads import LayerwiseTaskHead
    head = LayerwiseTaskHead(16, dict(center=(2, 2), cls=(3, 2)), num_layers=3, hidden_dims=8)
    head.init_weights()
    assert torch.allclose(head.branches['cls'][-1].bias, torch.full((9,), -2.19))
    for p in head.parameters():
        p.data.normal_()
    x = torch.randn(3, 2, 5, 16)
    out = head(x)
    for name, c in (('center', 2), ('cls', 3)):
        conv0, ln, _, conv1 = head.branches[name]
        for layer in range(3):
            hid = slice(layer * 8, layer * 8 + 8)
            y = F.linear(x[layer], conv0.weight[hid, :, 0])
            y = F.relu(F.layer_norm(y, (8,), ln.weight[hid], ln.bias[hid], eps=1e-6))
            y = F.linear(y, conv1.weight[layer * c:(layer + 1) * c, :, 0], conv1.bias[layer * c:(layer + 1) * c])
            torch.testing.assert_close(out[name][layer], y, atol=1e-5, rtol=1e-5)


def _focal(logits, labels, alpha=0.25, gamma=2.0):
    """Sigmoid focal loss summed over queries and classes (labels == C: background)."""
    p = logits.sigmoid()
    t = F.one_hot(labels, logits.shape[1] + 1)[:, :-1].float()
    pos = -alpha * (1 - p) ** gamma * torch.log(p)
    neg = -(1 - alpha) * p ** gamma * torch.log(1 - p)
    return (t * pos + (1 - t) * neg).sum()


def test_official_loss_normalisation_and_separate_dn_terms():
    torch.manual_seed(0)
    head = _small_head()
    head.train()
    gt = [torch.tensor([[5., 3., -1., 4., 2., 1.5, 0.3, 1., 0.], [-10., 8., -1.5, 1., 1., 1.8, 0., 0., .5]]),
          torch.tensor([[20., -4., -1., 10., 3., 3., 1., 0., 0.]])]
    labels = [torch.tensor([0, 8]), torch.tensor([3])]
    bev = torch.randn(2, 16, 8, 8)
    outs, dn = head(bev, None, gt, labels)
    losses = head.loss(outs, dn, gt, labels)
    assert {'loss_cls', 'loss_bbox', 'dn_loss_cls', 'dn_loss_bbox', 'd0.loss_cls', 'd0.dn_loss_bbox'} <= set(losses)
    assert dn.num_groups == min(10, 20 // 2)                        # official: min(10, num_query // max GT)
    cls, codes = outs[0]['cls'][-1], outs[0]['codes'][-1]
    pad = dn.pad_size
    w = torch.tensor([2., 2., 1., 1., 1., 1., 1., 1., .2, .2])
    from plugin.models.task_modules import encode_boxes
    match_labels, match_targets = [], []
    for b in range(2):
        lab, tgt = head._match(0, cls[b, pad:], codes[b, pad:], gt[b], labels[b])
        match_labels.append(lab), match_targets.append(tgt)
    lab, tgt = torch.cat(match_labels), torch.cat(match_targets)
    num_pos = int((lab < 10).sum())
    assert num_pos == 3
    cls_avg = num_pos + 0.1 * (lab.numel() - num_pos)                 # positives + 0.1 x negatives
    ref_cls = 2.0 * _focal(cls[:, pad:].flatten(0, 1), lab) / cls_avg
    torch.testing.assert_close(losses['loss_cls'], ref_cls, rtol=1e-4, atol=1e-6)
    pos = lab < 10
    diff = (codes[:, pad:].flatten(0, 1) - tgt).abs() * w
    torch.testing.assert_close(losses['loss_bbox'], 0.25 * diff[pos].sum() / num_pos, rtol=1e-4, atol=1e-6)
    # DN: every real DN query in the classification term (far copies as background),
    # normalised by num_tgt * pi / 6 * split^3; the box term covers far copies too
    valid = dn.valid
    num_tgt = int(valid.sum())
    assert num_tgt == dn.num_groups * 3
    assert (dn.labels[valid] == 10).any(), 'this seed has far DN copies'
    ref_dn_cls = 2.0 * _focal(cls[:, :pad][valid], dn.labels[valid]) / (num_tgt * math.pi / 6 * 0.75 ** 3)
    torch.testing.assert_close(losses['dn_loss_cls'], ref_dn_cls, rtol=1e-4, atol=1e-6)
    dn_diff = (codes[:, :pad][valid] - encode_boxes(dn.box_targets[valid])).abs() * w
    torch.testing.assert_close(losses['dn_loss_bbox'], 0.25 * dn_diff.sum() / num_tgt, rtol=1e-4, atol=1e-6)


def test_cmt_code_layout_reads_official_branch_order():
    """code_layout='cmt': the height branch is log dx, dim[1] is cz (official decoding)."""
    torch.manual_seed(1)
    head = _small_head()
    head.eval()
    raw = {}
    head.task_heads[0].register_forward_hook(lambda m, i, o: raw.update(o))
    outs, _ = head(torch.randn(1, 16, 8, 8), None, [{}])
    ref = head.reference_points.weight
    r0 = torch.log(ref.clamp(min=1e-5) / (1 - ref).clamp(min=1e-5))
    pc = torch.tensor(PC)
    xy = (raw['center'][-1, 0] + r0[:, :2]).sigmoid() * (pc[3:5] - pc[:2]) + pc[:2]
    hz = (raw['height'][-1, 0] + r0[:, 2:]).sigmoid() * (pc[5] - pc[2]) + pc[2]
    d = raw['dim'][-1, 0]
    codes = outs[0]['codes'][-1, 0]
    torch.testing.assert_close(codes[:, :2], xy)
    torch.testing.assert_close(codes[:, 2], d[:, 1])                # cz <- dim[1]
    torch.testing.assert_close(codes[:, 3], hz[:, 0])               # log dx <- height
    torch.testing.assert_close(codes[:, 4], d[:, 0])                # log dy <- dim[0]
    torch.testing.assert_close(codes[:, 5], d[:, 2])                # log dz <- dim[2]


def test_matching_cost_weighs_codes_and_stays_fp32_under_autocast():
    _registry()
    from mmdet3d.registry import TASK_UTILS
    assigner = TASK_UTILS.build(dict(type='HungarianAssigner3D', code_weights=[2, 2, 1, 1, 1, 1, 1, 1, .2, .2]))
    cls = torch.randn(4, 10)
    pred, gt = torch.randn(4, 10), torch.randn(2, 10)
    labels = torch.tensor([1, 7])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        _, cost = assigner.assign(cls.bfloat16(), pred.bfloat16(), labels, gt.bfloat16())
    assert cost.dtype == torch.float32
    w = torch.tensor([2., 2., 1., 1., 1., 1., 1., 1.])
    p = cls.bfloat16().float().sigmoid()
    # mmdet's FocalLossCost: positive cost minus negative cost
    focal = (-(p + 1e-12).log() * 0.25 * (1 - p) ** 2 + (1 - p + 1e-12).log() * 0.75 * p ** 2)[:, labels]
    l1 = ((pred.bfloat16().float()[:, None, :8] - gt.bfloat16().float()[None, :, :8]).abs() * w).sum(-1)
    torch.testing.assert_close(cost, 2.0 * focal + 0.25 * l1, rtol=1e-5, atol=1e-5)


def test_fp32_islands_under_autocast():
    MODELS = _registry()
    cfg = _cfg(R50)
    assert cfg.model.fp32_modules == ['pts_voxel_encoder', 'pts_middle_encoder', 'pts_bbox_head']
    from plugin.models.detectors import CmtDetector
    det = CmtDetector.__new__(CmtDetector)
    torch.nn.Module.__init__(det)
    det.fp32_modules = ('pts_bbox_head',)
    seen = []

    def probe(x, extra=None):
        seen.append((x.dtype, extra[0].dtype, torch.is_autocast_enabled('cpu')))
        return x
    x = torch.randn(3, 4, dtype=torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        det._run('pts_bbox_head', probe, x, extra=[x])
        det._run('pts_backbone', probe, x, extra=[x])
    assert seen == [(torch.float32, torch.float32, False), (torch.bfloat16, torch.bfloat16, True)]
    # the head's loss gets its tensors inside lists only: the island still follows the model's device
    det.pts_bbox_head = torch.nn.Linear(2, 2)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        det._run('pts_bbox_head', lambda outs: seen.append((outs[0].dtype, torch.is_autocast_enabled('cpu'))), [x])
    assert seen[-1] == (torch.float32, False)
    with pytest.raises(ValueError, match='fp32_modules'):
        MODELS.build(dict(cfg.model, fp32_modules=['img_backbone']))


@pytest.mark.parametrize('config,peak,lr', [(VOV, 8, 1e-4), (R50, 6, 1.4e-4)])
def test_full_schedule_lr_groups_and_beta1_cycle(config, peak, lr):
    """Stepping the built schedulers: lr x peak at 40% for every group (backbone x0.01, neck
    x0.1), x1e-4 at the end; beta1 0.9 -> 0.805 -> 0.9."""
    _registry()
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = _cfg(config)
    model = torch.nn.Module()
    model.img_backbone = torch.nn.Linear(2, 2)
    model.img_neck = torch.nn.Linear(2, 2)
    model.pts_bbox_head = torch.nn.Linear(2, 2)
    ow_cfg = dict(cfg.optim_wrapper, type='OptimWrapper')
    ow_cfg.pop('loss_scale', None)
    ow = build_optim_wrapper(model, ow_cfg)
    epoch_length = 100
    scheds = [PARAM_SCHEDULERS.build(dict(s), default_args=dict(optimizer=ow, epoch_length=epoch_length))
              for s in cfg.param_scheduler]
    total = cfg.max_epochs * epoch_length
    groups = ow.optimizer.param_groups
    mult = {id(p): name for name, m in model.named_children() for p in m.parameters()}
    names = [mult[id(g['params'][0])] for g in groups]
    base = {'img_backbone': lr * 0.01, 'img_neck': lr * 0.1, 'pts_bbox_head': lr}
    decay = {n: g['weight_decay'] for n, g in zip(names, groups)}
    assert decay['img_backbone'] == pytest.approx(0.05) and decay['pts_bbox_head'] == pytest.approx(0.01)
    lrs, betas = [], []
    for _ in range(total):
        lrs.append({n: g['lr'] for n, g in zip(names, groups)})
        betas.append(groups[0]['betas'][0])
        for s in scheds:
            s.step()
    lrs.append({n: g['lr'] for n, g in zip(names, groups)})
    betas.append(groups[0]['betas'][0])
    up = int(0.4 * total)
    for n in names:
        assert lrs[0][n] == pytest.approx(base[n])
        assert lrs[up][n] == pytest.approx(base[n] * peak, rel=1e-3)
        assert max(r[n] for r in lrs) == pytest.approx(base[n] * peak, rel=1e-3)
        assert lrs[-1][n] == pytest.approx(base[n] * 1e-4, abs=base[n] * peak * 1e-5)
    assert betas[0] == pytest.approx(0.9)
    assert betas[up] == pytest.approx(0.9 * 0.85 / 0.95, rel=1e-4) and min(betas) == pytest.approx(0.805263, rel=1e-4)
    assert betas[-1] == pytest.approx(0.9, rel=1e-6) and max(betas) <= 0.9 + 1e-9


@pytest.fixture(scope='module')
def generated_metas(synthetic_root):
    """lidar2img and image shapes of one generated val sample through the R50 test pipeline."""
    _registry()
    from mmdet3d.registry import DATASETS
    cfg = _cfg(R50)
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.update(data_root=synthetic_root + '/', metainfo=dict(classes=cfg.class_names, version='v1.0-mini'))
    sample = DATASETS.build(ds_cfg)[0]
    meta = dict(sample['data_samples'].metainfo)
    h, w = sample['inputs']['img'].shape[-2:]
    meta['input_shape'] = (h, w)
    return meta


def test_converted_head_predicts_what_the_official_formulas_give(generated_metas):
    """An official head state dict (random values, official names and shapes) converted into
    the R50 config's head gives the official head's boxes, scores and classes (float32 on
    both sides; official CMT runs its cross-attention in fp16 with flash-attn, whose error is
    ~1e-3 relative, far above the 1e-4 tolerance used here)."""
    MODELS = _registry()
    from plugin.models.official_cmt_keys import convert_official_cmt
    from plugin.models.utils.camera_geometry import CameraGeometry
    cfg = _cfg(R50)
    head = MODELS.build(cfg.model.pts_bbox_head)
    head.eval()
    official = official_head_state()
    target = {'pts_bbox_head.' + k: v for k, v in head.state_dict().items()}
    converted = convert_official_cmt(official, cfg.class_names, target)
    head.load_state_dict({k[len('pts_bbox_head.'):]: v for k, v in converted.items()}, strict=True)
    torch.manual_seed(0)
    bev = torch.randn(1, 512, 12, 12)
    h, w = generated_metas['input_shape']
    img = torch.randn(1, 6, 256, h // 16, w // 16)
    with torch.no_grad():
        outs, _ = head(bev, img, geometry=CameraGeometry.from_metas([generated_metas]))
        ours = head.predict_by_feat(outs, [generated_metas])[0]
        boxes, scores, labels = official_head_predict(
            official, bev, img[0], np.stack(generated_metas['lidar2img']), (h, w), cfg.point_cloud_range,
            post_center_range=cfg.model.pts_bbox_head.bbox_coder.post_center_range)
    assert len(scores) > 100
    to_ours = torch.tensor([cfg.class_names.index(c) for c in OFFICIAL_CLASSES])
    torch.testing.assert_close(ours.scores_3d, scores, rtol=1e-4, atol=1e-6)
    # detections whose scores tie within that tolerance may come in either order (CPU
    # kernels round differently): pair each of ours with the closest official box among them
    near = (ours.scores_3d[:, None] - scores[None]).abs() <= 1e-4 * scores.abs()[None] + 1e-6
    dist = (ours.bboxes_3d.tensor[:, None] - boxes[None]).abs().amax(-1).masked_fill(~near, float('inf'))
    match = dist.argmin(1)
    assert len(set(match.tolist())) == len(match)
    torch.testing.assert_close(ours.labels_3d, to_ours[labels[match]])
    torch.testing.assert_close(ours.bboxes_3d.tensor, boxes[match], rtol=1e-4, atol=1e-3)


def _official_full_state(model):
    """A whole-model state dict in the official naming: the official head (random), the
    official DD3D VoVNet names for a VoVNet backbone, our model's other weights renamed to
    the official names (CPFPN's output conv, mmcv 1.x sparse-convolution kernels
    [kD, kH, kW, in, out])."""
    state = official_head_state()
    skip = ('pts_bbox_head.',)
    if type(model.img_backbone).__name__ == 'VoVNet':
        vov = random_state_dict(official_vovnet_shapes(V99))
        state.update({'img_backbone.' + k: v for k, v in vov.items()})
        skip += ('img_backbone.',)
    for key, value in model.state_dict().items():
        if key.startswith(skip):
            continue
        if key.startswith('img_neck.fpn_conv.'):
            key = 'img_neck.fpn_convs.0.' + key[len('img_neck.fpn_conv.'):]
        if key.startswith('pts_middle_encoder.') and value.dim() == 5:
            value = value.permute(1, 2, 3, 4, 0)                       # spconv 2 -> mmcv 1.x layout
        state[key] = torch.randn_like(value.float()).to(value.dtype) if value.is_floating_point() else value
    return state


@pytest.mark.parametrize('config', [R50, VOV])
def test_converter_tool_loads_strictly_and_refuses_incomplete_checkpoints(config, tmp_path):
    """Both full configs: convert an official-named checkpoint (the config chosen by the
    backbone), load strictly, check values; a missing or a foreign key is refused, named."""
    MODELS = _registry()
    tool = load_tool('tools/convert_cmt_checkpoint.py')
    cfg = _cfg(config)
    model = MODELS.build(cfg.model)
    official = _official_full_state(model)
    src, dst = tmp_path / 'cmt_official.pth', tmp_path / 'cmt_ours.pth'
    torch.save(dict(state_dict=official, meta=dict(epoch=20)), src)
    assert tool.convert(str(src), str(dst)) == osp.join(REPO, config)
    sd = torch.load(dst, map_location='cpu', weights_only=False)['state_dict']
    model.load_state_dict(sd, strict=True)
    p = 'pts_bbox_head.transformer.decoder.layers.3.'
    w = official[p + 'attentions.1.attn.in_proj_weight']
    torch.testing.assert_close(sd[p + 'cross_attn.q_proj.weight'], w[:256])
    torch.testing.assert_close(sd[p + 'cross_attn.v_proj.weight'], w[512:])
    cls_b = official['pts_bbox_head.task_heads.0.cls_logits.3.bias'].view(6, 10)
    ours_b = sd['pts_bbox_head.task_heads.0.branches.cls.3.bias'].view(6, 10)
    for j, name in enumerate(cfg.class_names):
        torch.testing.assert_close(ours_b[:, j], cls_b[:, OFFICIAL_CLASSES.index(name)])
    k = next(k for k, v in model.state_dict().items() if k.startswith('pts_middle_encoder.') and v.dim() == 5)
    torch.testing.assert_close(model.state_dict()[k], official[k].permute(4, 0, 1, 2, 3))   # loaded as spconv 2
    torch.testing.assert_close(sd['img_neck.fpn_conv.conv.weight'], official['img_neck.fpn_convs.0.conv.weight'])
    if config == VOV:
        torch.testing.assert_close(sd['img_backbone.stages.2.3.layers.0.conv.weight'],
                                   official['img_backbone.stage4.OSA4_3.layers.0.OSA4_3_0/conv.weight'])
    # incomplete: one key dropped; foreign: one key added
    from plugin.models.official_cmt_keys import CheckpointMismatch
    dropped = dict(official)
    dropped.pop('pts_bbox_head.rv_embedding.2.bias')
    torch.save(dict(state_dict=dropped), src)
    with pytest.raises(CheckpointMismatch, match=r'missing 1: pts_bbox_head\.rv_embedding\.mlp\.2\.bias'):
        tool.convert(str(src), str(dst), osp.join(REPO, config))
    torch.save(dict(state_dict=dict(official, **{'pts_bbox_head.heatmap_head.weight': torch.zeros(1)})), src)
    with pytest.raises(SystemExit, match='heatmap_head.weight'):
        tool.main([str(src), str(dst), '--config', osp.join(REPO, config)])
