"""An independent reference of the official CMT head (github.com/junjie18/CMT, its
`CmtHead.forward_single`, `CmtTransformer`, `SeparateTaskHead` and `MultiTaskBBoxCoder`),
written from its formulas in plain torch on a state dict in the official naming, for the
parity tests of the converted checkpoints. Evaluation mode, float32, no DN queries.
"""
import math
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F

OFFICIAL_CLASSES = ['car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier', 'motorcycle',
                    'bicycle', 'pedestrian', 'traffic_cone']
BRANCHES = dict(center=2, height=1, dim=3, rot=2, vel=2, cls_logits=10)


def official_head_state(num_layers=6, hidden=256, in_channels=512, num_query=900, depth_num=64,
                        ffn=1024, head_conv=64, seed=0) -> Dict[str, torch.Tensor]:
    """Random weights under the official head's key names and shapes (prefix pts_bbox_head.)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=None):
        scale = scale if scale is not None else 1.0 / math.sqrt(shape[-1] if len(shape) > 1 else 1)
        return torch.randn(*shape, generator=g) * scale

    sd = {'shared_conv.conv.weight': rnd(hidden, in_channels, 3, 3, scale=0.02),
          'shared_conv.bn.weight': 1 + 0.1 * rnd(hidden, scale=1), 'shared_conv.bn.bias': rnd(hidden, scale=0.1),
          'shared_conv.bn.running_mean': rnd(hidden, scale=0.1),
          'shared_conv.bn.running_var': 1 + torch.rand(hidden, generator=g),
          'shared_conv.bn.num_batches_tracked': torch.tensor(100),
          'reference_points.weight': torch.rand(num_query, 3, generator=g),
          'bev_embedding.0.weight': rnd(hidden, 2 * hidden), 'bev_embedding.0.bias': rnd(hidden, scale=0.1),
          'bev_embedding.2.weight': rnd(hidden, hidden), 'bev_embedding.2.bias': rnd(hidden, scale=0.1),
          'rv_embedding.0.weight': rnd(4 * hidden, 3 * depth_num), 'rv_embedding.0.bias': rnd(4 * hidden, scale=0.1),
          'rv_embedding.2.weight': rnd(hidden, 4 * hidden), 'rv_embedding.2.bias': rnd(hidden, scale=0.1),
          'transformer.decoder.post_norm.weight': 1 + 0.1 * rnd(hidden, scale=1),
          'transformer.decoder.post_norm.bias': rnd(hidden, scale=0.1)}
    for i in range(num_layers):
        p = f'transformer.decoder.layers.{i}.'
        for a in (0, 1):
            sd[f'{p}attentions.{a}.attn.in_proj_weight'] = rnd(3 * hidden, hidden)
            sd[f'{p}attentions.{a}.attn.in_proj_bias'] = rnd(3 * hidden, scale=0.1)
            sd[f'{p}attentions.{a}.attn.out_proj.weight'] = rnd(hidden, hidden)
            sd[f'{p}attentions.{a}.attn.out_proj.bias'] = rnd(hidden, scale=0.1)
        sd[f'{p}ffns.0.layers.0.0.weight'] = rnd(ffn, hidden)
        sd[f'{p}ffns.0.layers.0.0.bias'] = rnd(ffn, scale=0.1)
        sd[f'{p}ffns.0.layers.1.weight'] = rnd(hidden, ffn)
        sd[f'{p}ffns.0.layers.1.bias'] = rnd(hidden, scale=0.1)
        for n in range(3):
            sd[f'{p}norms.{n}.weight'] = 1 + 0.1 * rnd(hidden, scale=1)
            sd[f'{p}norms.{n}.bias'] = rnd(hidden, scale=0.1)
    for name, out in BRANCHES.items():
        p = f'task_heads.0.{name}.'
        sd[p + '0.weight'] = rnd(num_layers * head_conv, hidden, 1)
        sd[p + '1.weight'] = 1 + 0.1 * rnd(num_layers * head_conv, scale=1)
        sd[p + '1.bias'] = rnd(num_layers * head_conv, scale=0.1)
        sd[p + '3.weight'] = rnd(num_layers * out, head_conv, 1)
        sd[p + '3.bias'] = rnd(num_layers * out, scale=0.1) + (-2.19 if name == 'cls_logits' else 0)
    return {'pts_bbox_head.' + k: v for k, v in sd.items()}


def pos2embed(pos, num_feats):
    """Official: wavelengths 1 + 2 floor(i/2)/F, (sin, cos) interleaved, cat(y, x)."""
    dim_t = torch.arange(num_feats, dtype=torch.float32)
    dim_t = 2 * (dim_t // 2) / num_feats + 1
    px = pos[..., 0, None] * 2 * math.pi / dim_t
    py = pos[..., 1, None] * 2 * math.pi / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), -1).flatten(-2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), -1).flatten(-2)
    return torch.cat((py, px), -1)


def _mlp(sd, p, x):
    return F.linear(F.relu(F.linear(x, sd[p + '0.weight'], sd[p + '0.bias'])), sd[p + '2.weight'], sd[p + '2.bias'])


def _mha(sd, p, q, k, v, heads):
    w, b = sd[p + 'in_proj_weight'].chunk(3), sd[p + 'in_proj_bias'].chunk(3)
    q, k, v = F.linear(q, w[0], b[0]), F.linear(k, w[1], b[1]), F.linear(v, w[2], b[2])
    bsz, nq, c = q.shape
    split = lambda t: t.view(bsz, -1, heads, c // heads).transpose(1, 2)  # noqa: E731
    att = (split(q) @ split(k).transpose(-1, -2) / math.sqrt(c // heads)).softmax(-1)
    out = (att @ split(v)).transpose(1, 2).reshape(bsz, nq, c)
    return F.linear(out, sd[p + 'out_proj.weight'], sd[p + 'out_proj.bias'])


def official_head_predict(state: Dict[str, torch.Tensor], bev: torch.Tensor, img: torch.Tensor,
                          lidar2img: np.ndarray, pad_hw, pc_range: List[float], num_layers=6, heads=8,
                          depth_num=64, max_num=300, post_center_range=None):
    """bev [1, C, H, W], img [V, 256, h, w], lidar2img [V, 4, 4] -> (boxes [K, 9] with bottom
    centres, scores [K], labels [K] in the official class order), sorted by score."""
    sd = {k[len('pts_bbox_head.'):]: v.float() for k, v in state.items()}
    pc = torch.tensor(pc_range, dtype=torch.float32)
    hidden = sd['bev_embedding.2.weight'].shape[0]
    # BEV input: 3x3 conv, BN (eval), ReLU
    x = F.conv2d(bev, sd['shared_conv.conv.weight'], padding=1)
    x = F.relu(F.batch_norm(x, sd['shared_conv.bn.running_mean'], sd['shared_conv.bn.running_var'],
                            sd['shared_conv.bn.weight'], sd['shared_conv.bn.bias'], False, 0.0, 1e-5))
    _, _, H, W = x.shape
    pad_h, pad_w = pad_hw
    coords_d = 1 + torch.arange(depth_num, dtype=torch.float32) * (pc_range[3] - 1) / depth_num
    l2i = torch.from_numpy(np.asarray(lidar2img, dtype=np.float32))
    i2l = torch.from_numpy(np.linalg.inv(np.asarray(lidar2img, dtype=np.float64)).astype(np.float32))
    # image memory position embedding (pixel corners, uniform depth bins)
    v, _, h, w = img.shape
    ch = torch.arange(h, dtype=torch.float32) * pad_h / h
    cw = torch.arange(w, dtype=torch.float32) * pad_w / w
    gh, gw, gd = torch.meshgrid(ch, cw, coords_d, indexing='ij')
    coords = torch.stack([gw * gd, gh * gd, gd, torch.ones_like(gd)], -1)
    c3d = torch.einsum('hwdo,vco->vhwdc', coords, i2l)[..., :3]
    c3d = (c3d - pc[:3]) / (pc[3:] - pc[:3])
    rv_pos = _mlp(sd, 'rv_embedding.', c3d.reshape(v, h, w, -1))                  # [V, h, w, C]
    # BEV memory position embedding (cell centres)
    gy, gx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing='ij')
    coords_bev = torch.stack([(gx + 0.5) / W, (gy + 0.5) / H], -1).view(-1, 2)
    bev_pos = _mlp(sd, 'bev_embedding.', pos2embed(coords_bev, hidden))
    # query embedding: BEV part + camera part summed over the views that see the point
    ref = sd['reference_points.weight']
    bev_q = _mlp(sd, 'bev_embedding.', pos2embed(ref, hidden))
    pts = ref * (pc[3:] - pc[:3]) + pc[:3]
    proj = torch.einsum('nd,vcd->vnc', torch.cat([pts, torch.ones_like(pts[:, :1])], -1), l2i)
    z = proj[..., 2:3]
    zmask = z > 0
    uvz = proj[..., :3] / (z + zmask * 1e-6 - (~zmask) * 1e-6)
    seen = (uvz[..., 0] < pad_w) & (uvz[..., 0] >= 0) & (uvz[..., 1] < pad_h) & (uvz[..., 1] >= 0) & zmask[..., 0]
    lifted = torch.cat([uvz[..., None, :] * coords_d[:, None], torch.ones(*uvz.shape[:2], depth_num, 1)], -1)
    back = torch.einsum('vndo,vco->vndc', lifted, i2l)[..., :3]
    back = (back - pc[:3]) / (pc[3:] - pc[:3])
    rv_q = (_mlp(sd, 'rv_embedding.', back.reshape(v, len(ref), -1)) * seen[..., None]).sum(0)
    query_pos = (bev_q + rv_q)[None]
    # decoder
    memory = torch.cat([x.flatten(2).transpose(1, 2), img.permute(0, 2, 3, 1).reshape(1, -1, img.shape[1])], 1)
    mem_pos = torch.cat([bev_pos[None], rv_pos.reshape(1, -1, hidden)], 1)
    t = torch.zeros_like(query_pos)
    outs = []
    for i in range(num_layers):
        p = f'transformer.decoder.layers.{i}.'

        def ln(y, n):
            return F.layer_norm(y, (hidden,), sd[f'{p}norms.{n}.weight'], sd[f'{p}norms.{n}.bias'])
        t = ln(t + _mha(sd, p + 'attentions.0.attn.', t + query_pos, t + query_pos, t, heads), 0)
        t = ln(t + _mha(sd, p + 'attentions.1.attn.', t + query_pos, memory + mem_pos, memory, heads), 1)
        f = F.linear(F.relu(F.linear(t, sd[p + 'ffns.0.layers.0.0.weight'], sd[p + 'ffns.0.layers.0.0.bias'])),
                     sd[p + 'ffns.0.layers.1.weight'], sd[p + 'ffns.0.layers.1.bias'])
        t = ln(t + f, 2)
        outs.append(F.layer_norm(t, (hidden,), sd['transformer.decoder.post_norm.weight'],
                                 sd['transformer.decoder.post_norm.bias']))
    last = num_layers - 1
    feat = outs[last][0]                                                         # [Q, C]
    res = {}
    for name, out in BRANCHES.items():
        pre = f'task_heads.0.{name}.'
        hid = sd[pre + '0.weight'].shape[0] // num_layers
        w0 = sd[pre + '0.weight'][last * hid:(last + 1) * hid, :, 0]
        y = F.linear(feat, w0)
        y = F.layer_norm(y, (hid,), sd[pre + '1.weight'][last * hid:(last + 1) * hid],
                         sd[pre + '1.bias'][last * hid:(last + 1) * hid], eps=1e-6)
        y = F.relu(y)
        res[name] = F.linear(y, sd[pre + '3.weight'][last * out:(last + 1) * out, :, 0],
                             sd[pre + '3.bias'][last * out:(last + 1) * out])
    r0 = torch.log(ref.clamp(min=1e-5) / (1 - ref).clamp(min=1e-5))          # inverse sigmoid
    center = (res['center'] + r0[:, :2]).sigmoid() * (pc[3:5] - pc[:2]) + pc[:2]
    height = (res['height'] + r0[:, 2:3]).sigmoid() * (pc[5] - pc[2]) + pc[2]
    code = torch.cat([center, height, res['dim'], res['rot'], res['vel']], -1)     # official concatenation
    # MultiTaskBBoxCoder + denormalize_bbox: (cx, cy, w=exp[2], l=exp[3], cz=[4], h=exp[5], atan2, vx, vy)
    scores, idx = res['cls_logits'].sigmoid().flatten().topk(max_num)
    labels, q = idx % 10, idx // 10
    c = code[q]
    boxes = torch.stack([c[:, 0], c[:, 1], c[:, 4], c[:, 2].exp(), c[:, 3].exp(), c[:, 5].exp(),
                         torch.atan2(c[:, 6], c[:, 7]), c[:, 8], c[:, 9]], -1)
    if post_center_range is not None:
        r = torch.tensor(post_center_range)
        keep = ((boxes[:, :3] >= r[:3]) & (boxes[:, :3] <= r[3:])).all(1)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    boxes[:, 2] = boxes[:, 2] - boxes[:, 5] * 0.5                                  # bottom centre
    return boxes, scores, labels
