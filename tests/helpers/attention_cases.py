"""Random attention cases with window biases and the independent float64 references the
AQR attention routes are checked against (a loop-built dense bias, plain softmax)."""
import math

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from aqr_attention import LocalWindowBias, local_bias_attention

TOL = dict(atol=1e-5, rtol=0.0)
BEV = (5, 6)
CAMS = (3, 4, 5)
HEADS, DIM = 2, 8


def loop_dense_bias(bev_shape, cam_shape, bev_center, cam_center, lidar_weight, camera_weight,
                    window_size, scale):
    """The spec, written out: for each (query, key) decide which weight (if any) applies."""
    bev_win, cam_win = (window_size, window_size) if isinstance(window_size, int) else window_size
    b, nq = lidar_weight.shape
    n_bev = 0 if bev_shape is None else bev_shape[0] * bev_shape[1]
    n_cam = 0 if cam_shape is None else cam_shape[0] * cam_shape[1] * cam_shape[2]
    lidar_on = torch.zeros(b, nq, n_bev + n_cam, dtype=torch.float64)
    cam_on = torch.zeros_like(lidar_on)
    for i in range(b):
        for j in range(nq):
            for key in range(n_bev + n_cam):
                if key < n_bev:
                    row, col = divmod(key, bev_shape[1])
                    r0, c0 = bev_center[i, j].tolist()
                    if abs(row - r0) <= bev_win // 2 and abs(col - c0) <= bev_win // 2:
                        lidar_on[i, j, key] = 1
                else:
                    view, rest = divmod(key - n_bev, cam_shape[1] * cam_shape[2])
                    row, col = divmod(rest, cam_shape[2])
                    v0, r0, c0 = cam_center[i, j].tolist()
                    if view == v0 and abs(row - r0) <= cam_win // 2 and abs(col - c0) <= cam_win // 2:
                        cam_on[i, j, key] = 1
    return scale.double() * (lidar_on * lidar_weight.double()[..., None]
                             + cam_on * camera_weight.double()[..., None])


def reference_attention(q, k, v, dense_bias, mask=None):
    """softmax(q k^T / sqrt(d) + bias + mask) v in float64; a fully masked row gives zeros."""
    q, k, v = q.double(), k.double(), v.double()
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + dense_bias.double()[:, None]
    if mask is None:
        return torch.softmax(s, -1) @ v
    s = s + mask.double()
    dead = torch.isneginf(s).all(-1, keepdim=True)
    p = torch.softmax(s.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
    return p @ v


def make_case(window_size, layout='contiguous', batch=2, nq=9, bev_shape=BEV, cam_shape=CAMS,
              seed=0, chunk_elements=1 << 21, dim=DIM):
    """Random inputs whose first queries sit on grid corners and some have no camera."""
    g = torch.Generator().manual_seed(seed)
    n_keys = (0 if bev_shape is None else bev_shape[0] * bev_shape[1]) + \
             (0 if cam_shape is None else cam_shape[0] * cam_shape[1] * cam_shape[2])

    def heads(n):
        if layout == 'transposed':   # [B, N, h, d] projections split into heads
            return torch.randn(batch, n, HEADS, dim, generator=g).transpose(1, 2)
        return torch.randn(batch, HEADS, n, dim, generator=g)

    q, k, v = heads(nq), heads(n_keys), heads(n_keys)
    bev_center = cam_center = None
    if bev_shape is not None:
        h, w = bev_shape
        bev_center = torch.stack([torch.randint(0, h, (batch, nq), generator=g),
                                  torch.randint(0, w, (batch, nq), generator=g)], -1)
        bev_center[:, :4] = torch.tensor([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1]])[:nq]
    if cam_shape is not None:
        nv, h, w = cam_shape
        cam_center = torch.stack([torch.randint(-1, nv, (batch, nq), generator=g),
                                  torch.randint(0, h, (batch, nq), generator=g),
                                  torch.randint(0, w, (batch, nq), generator=g)], -1)
        cam_center[:, :5] = torch.tensor([[0, 0, 0], [nv - 1, h - 1, w - 1], [1, 0, w - 1],
                                          [nv - 1, h - 1, 0], [-1, 1, 1]])[:nq]
        if nq > 5:
            cam_center[-1, 5] = torch.tensor([-1, 0, 0])
    lw = torch.rand(batch, nq, generator=g) * 3 - 1.5
    cw = torch.rand(batch, nq, generator=g) * 3 - 1.5
    scale = torch.tensor(0.8)
    leaves = [t.requires_grad_() for t in (q, k, v, lw, cw, scale)]
    bias = LocalWindowBias(bev_shape, cam_shape, bev_center, cam_center, lw, cw, window_size,
                           scale=scale, chunk_elements=chunk_elements)
    return leaves, bias


def additive(key_padding_mask):
    """bool [B, K] (True = padding) -> the additive [B, 1, 1, K] mask of the dense references."""
    if key_padding_mask is None:
        return None
    return torch.zeros(key_padding_mask.shape).masked_fill(key_padding_mask, float('-inf'))[:, None, None]


def check_against_references(leaves, bias, window_size, key_padding_mask=None, force_fallback=False):
    q, k, v, lw, cw, scale = leaves
    out = local_bias_attention(q, k, v, bias, key_padding_mask, force_fallback=force_fallback)
    mask = additive(key_padding_mask)
    assert out.shape == q.shape and out.dtype == q.dtype
    assert torch.isfinite(out).all()
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    grads = torch.autograd.grad(out, leaves, go)

    loop_bias = loop_dense_bias(bias.bev_shape, bias.cam_shape, bias.bev_center, bias.cam_center,
                                lw, cw, window_size, scale)
    torch.testing.assert_close(bias.to_dense().double(), loop_bias.detach(), **TOL)
    for dense in (bias.to_dense(), loop_bias):
        ref = reference_attention(q, k, v, dense, mask)
        ref_grads = torch.autograd.grad(ref, leaves, go.double())
        torch.testing.assert_close(out.double(), ref, **TOL)
        for name, got, want in zip('q k v lidar_weight camera_weight scale'.split(), grads, ref_grads):
            assert torch.isfinite(got).all(), name
            torch.testing.assert_close(got.double(), want.double(), **TOL, msg=lambda m: f'grad {name}: {m}')
    return out, grads


class LargestNewTensor(TorchDispatchMode):
    """Records the largest storage (in elements) that any op creates, i.e. any output
    whose storage is not one of its inputs' (views and in-place results are skipped)."""

    def __init__(self):
        super().__init__()
        self.largest, self.op = 0, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in torch.utils._pytree.tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)}
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                n = t.untyped_storage().nbytes() // t.element_size()
                if n > self.largest:
                    self.largest, self.op = n, func
        return out


def padding_mask(bias, batch):
    """bool [B, K]: the last column of every camera map and every 7th camera key are padding."""
    mask = torch.zeros(batch, bias.num_keys, dtype=torch.bool)
    cam = mask[:, bias.num_bev_keys:].view(batch, *CAMS)
    cam[..., -1] = True
    mask[:, bias.num_bev_keys::7] = True
    return mask


def dominant_window_case(dtype=torch.float32):
    """Four queries on grid corners (windows that do not overlap), each along its own axis
    e_j with its window keys along e_j too (score 11.5) and every other key zero (score
    0): the windows hold ~99.99 % of the unbiased attention. A bias of -5 x max_scale =
    -25 on them leaves ~0.001 % there, so the output is the average of the outside values,
    which the correction route would compute as the difference of two nearly equal sums."""
    leaves, bias = make_case((3, 3), 'contiguous', nq=4)
    q, k, v = (t.detach().clone() for t in leaves[:3])
    d = q.shape[-1]
    c = math.sqrt(11.5 * math.sqrt(d))
    idx, valid, _ = bias.window_keys()
    k.zero_()
    for i in range(q.shape[0]):
        for j in range(q.shape[2]):
            axis = torch.eye(d)[j] * c
            q[i, :, j] = axis
            k[i][:, idx[i, j][valid[i, j]]] = axis
    max_scale = 5.0
    lw, cw = -torch.ones(q.shape[0], q.shape[2]), -torch.ones(q.shape[0], q.shape[2])
    leaves = [t.to(dtype).requires_grad_() for t in (q, k, v, lw, cw, torch.tensor(5.0 * max_scale))]
    bias = LocalWindowBias(bias.bev_shape, bias.cam_shape, bias.bev_center, bias.cam_center, leaves[3],
                           leaves[4], (3, 3), scale=leaves[5])
    return leaves, bias


#: half-precision inputs against float32 inputs (float64 reference), absolute, on O(1) values
HALF_TOL = {torch.float16: 2e-3, torch.bfloat16: 2e-2}
