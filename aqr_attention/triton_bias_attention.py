"""Triton kernels of AQR's biased attention: the direct route, used on CUDA.

    out = softmax(q k^T / sqrt(d) + b + mask) v,   b = LocalWindowBias

A flash-attention forward (Dao et al., "FlashAttention", NeurIPS 2022; the online softmax
of the Triton fused-attention tutorial) that walks all keys of a query block and adds
the bias inside each query's windows as it goes: `scale * lidar_weight` where the key's
BEV cell is within the query's BEV window, `scale * camera_weight` where its camera cell
is in the query's view and within its camera window. The windows are tested from the
key index and the key grids' shapes (`KeyGrid`), so neither a dense bias nor a key
list is ever stored, and there is no correction term to amplify rounding errors.

Backward in two kernels, both deterministic (no atomics):
  * dK, dV by key blocks, looping over query blocks;
  * dQ by query blocks, looping over key blocks, which also sums dS over each query's
    BEV and camera windows into per-(b, h, q) partials: the bias gradients.

Precision: float32 inputs are multiplied in IEEE float32 (no TF32), float64 inputs in
float64; float16 / bfloat16 inputs use half-precision tensor-core products on a GPU with
float32 accumulation and statistics (k and v are cast to q's half dtype: the products take
one operand dtype), and are upcast in the interpreter (whose bf16 arithmetic is not
exact). Launch configurations, what the kernels support and their offline compilation:
`triton_configs.py`, `triton_compile.py`. With TRITON_INTERPRET=1 set before triton is imported the
kernels run on CPU tensors, which is how the CPU test suite checks them.
"""
import math
from typing import Dict, NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .backends import triton_interpreted
from .precision import compute_dtype
from .triton_configs import INTERPRETER, KernelConfig, kernel_configs, padded_head_dim
from .window_size import window_radius

#: finite stand-in for -inf inside the kernels (exp of it minus any finite score is 0)
NEG = tl.constexpr(-1.0e30)


@triton.jit
def _in_windows(offs_k, qrb, qcb, qv, qrc, qcc, NB, WB, HCWC, WC, RB, RC):
    """[BQ, BK] masks: the key is in the query's BEV window / camera window."""
    is_bev = offs_k < NB
    kr_b = offs_k // WB
    kc_b = offs_k % WB
    j = offs_k - NB
    kv = j // HCWC
    rem = j % HCWC
    kr_c = rem // WC
    kc_c = rem % WC
    in_bev = is_bev[None, :] & (tl.abs(kr_b[None, :] - qrb[:, None]) <= RB) \
        & (tl.abs(kc_b[None, :] - qcb[:, None]) <= RB)
    in_cam = (offs_k >= NB)[None, :] & (kv[None, :] == qv[:, None]) \
        & (tl.abs(kr_c[None, :] - qrc[:, None]) <= RC) & (tl.abs(kc_c[None, :] - qcc[:, None]) <= RC)
    return in_bev, in_cam


@triton.jit
def _dot(a, b, ACC: tl.constexpr, LOW: tl.constexpr):
    if LOW:
        return tl.dot(a, b, out_dtype=tl.float32)
    else:
        return tl.dot(a.to(ACC), b.to(ACC), input_precision="ieee", out_dtype=ACC)


@triton.jit
def _scores(q, k, offs_q, offs_k, qmask, kmask, b, h, M, smb, smh, smq, smk, bl, bc,
            qrb, qcb, qv, qrc, qcc, NB, WB, HCWC, WC, RB, RC, sm_scale,
            HAS_MASK: tl.constexpr, ACC: tl.constexpr, LOW: tl.constexpr):
    """Biased, masked scores [BQ, BK] (NEG for invalid or masked pairs) and the windows."""
    s = _dot(q, tl.trans(k), ACC, LOW).to(ACC) * sm_scale
    in_bev, in_cam = _in_windows(offs_k, qrb, qcb, qv, qrc, qcc, NB, WB, HCWC, WC, RB, RC)
    s += tl.where(in_bev, bl[:, None], 0.0) + tl.where(in_cam, bc[:, None], 0.0)
    valid = qmask[:, None] & kmask[None, :]
    if HAS_MASK:
        s += tl.load(M + b * smb + h * smh + offs_q[:, None] * smq + offs_k[None, :] * smk,
                     mask=valid, other=0.0).to(ACC)
    s = tl.where(valid, s, NEG)
    return tl.maximum(s, NEG), in_bev, in_cam


@triton.jit
def _load_rows(X, b, h, sb, sh, sr, sd, offs_r, offs_d, rmask, dmask, ACC: tl.constexpr, LOW: tl.constexpr):
    x = tl.load(X + b * sb + h * sh + offs_r[:, None] * sr + offs_d[None, :] * sd,
                mask=rmask[:, None] & dmask[None, :], other=0.0)
    if LOW:
        return x
    else:
        return x.to(ACC)


@triton.jit
def _query_windows(WIN, BL, BC, b, offs_q, qmask, NQ, BQ_TOTAL, ACC: tl.constexpr):
    """Window centres of a query block (WIN int32 [5, B, Q]: BEV row, BEV col, view, camera
    row, camera col; view -1 = none) and its bias values (BL, BC [B, Q])."""
    w = WIN + b * NQ + offs_q
    qrb = tl.load(w, mask=qmask, other=0)
    qcb = tl.load(w + BQ_TOTAL, mask=qmask, other=0)
    qv = tl.load(w + 2 * BQ_TOTAL, mask=qmask, other=-1)
    qrc = tl.load(w + 3 * BQ_TOTAL, mask=qmask, other=0)
    qcc = tl.load(w + 4 * BQ_TOTAL, mask=qmask, other=0)
    bl = tl.load(BL + b * NQ + offs_q, mask=qmask, other=0.0).to(ACC)
    bc = tl.load(BC + b * NQ + offs_q, mask=qmask, other=0.0).to(ACC)
    return qrb, qcb, qv, qrc, qcc, bl, bc


@triton.jit
def _grad_rows(DO, Lse, Drow, b, h, pid_bh, H, NQ, DH, offs_q, offs_d, qmask, dmask,
               ACC: tl.constexpr, LOW: tl.constexpr):
    """A query block's output gradient (DO contiguous [B, H, Q, D_head]), forward
    log-sum-exp and row term D = rowsum(dO * O) (Lse, Drow [B, H, Q])."""
    do = _load_rows(DO, b, h, H * NQ * DH, NQ * DH, DH, 1, offs_q, offs_d, qmask, dmask, ACC, LOW)
    lse = tl.load(Lse + pid_bh * NQ + offs_q, mask=qmask, other=0.0)
    drow = tl.load(Drow + pid_bh * NQ + offs_q, mask=qmask, other=0.0)
    return do, lse, drow


@triton.jit
def _fwd_kernel(Q, K, V, M, BL, BC, WIN, Out, Lse,
                sqb, sqh, sqq, sqd, skb, skh, skk, skd, svb, svh, svk, svd, smb, smh, smq, smk,
                sob, soh, soq, sod, H, NQ, NK, DH, BQ_TOTAL, sm_scale, NB, WB, HCWC, WC, RB, RC,
                HAS_MASK: tl.constexpr, ACC: tl.constexpr, LOW: tl.constexpr,
                BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, D: tl.constexpr):
    pid_q = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    offs_d = tl.arange(0, D)
    qmask = offs_q < NQ
    dmask = offs_d < DH
    q = _load_rows(Q, b, h, sqb, sqh, sqq, sqd, offs_q, offs_d, qmask, dmask, ACC, LOW)
    qrb, qcb, qv, qrc, qcc, bl, bc = _query_windows(WIN, BL, BC, b, offs_q, qmask, NQ, BQ_TOTAL, ACC)
    m_i = tl.zeros([BLOCK_Q], dtype=ACC) + NEG
    l_i = tl.zeros([BLOCK_Q], dtype=ACC)
    acc = tl.zeros([BLOCK_Q, D], dtype=ACC)
    for start in range(0, NK, BLOCK_K):
        offs_k = start + tl.arange(0, BLOCK_K)
        kmask = offs_k < NK
        k = _load_rows(K, b, h, skb, skh, skk, skd, offs_k, offs_d, kmask, dmask, ACC, LOW)
        s, in_bev, in_cam = _scores(q, k, offs_q, offs_k, qmask, kmask, b, h, M, smb, smh, smq, smk, bl, bc,
                                    qrb, qcb, qv, qrc, qcc, NB, WB, HCWC, WC, RB, RC, sm_scale,
                                    HAS_MASK, ACC, LOW)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = _load_rows(V, b, h, svb, svh, svk, svd, offs_k, offs_d, kmask, dmask, ACC, LOW)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, ACC, LOW).to(ACC)
        m_i = m_new
    l_safe = tl.where(l_i > 0, l_i, 1.0)
    out = acc / l_safe[:, None]
    tl.store(Out + b * sob + h * soh + offs_q[:, None] * soq + offs_d[None, :] * sod,
             out.to(Out.dtype.element_ty), mask=qmask[:, None] & dmask[None, :])
    tl.store(Lse + pid_bh * NQ + offs_q, m_i + tl.log(l_safe), mask=qmask)


@triton.jit
def _bwd_kv_kernel(Q, K, V, M, BL, BC, WIN, DO, Lse, Drow, DK, DV,
                   sqb, sqh, sqq, sqd, skb, skh, skk, skd, svb, svh, svk, svd, smb, smh, smq, smk,
                   H, NQ, NK, DH, BQ_TOTAL, sm_scale, NB, WB, HCWC, WC, RB, RC,
                   HAS_MASK: tl.constexpr, ACC: tl.constexpr, LOW: tl.constexpr,
                   BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, D: tl.constexpr):
    """dK, dV of one key block (DO, DK, DV contiguous [B, H, *, D_head]; Lse, Drow [B, H, Q])."""
    pid_k = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_d = tl.arange(0, D)
    kmask = offs_k < NK
    dmask = offs_d < DH
    k = _load_rows(K, b, h, skb, skh, skk, skd, offs_k, offs_d, kmask, dmask, ACC, LOW)
    v = _load_rows(V, b, h, svb, svh, svk, svd, offs_k, offs_d, kmask, dmask, ACC, LOW)
    dk = tl.zeros([BLOCK_K, D], dtype=ACC)
    dv = tl.zeros([BLOCK_K, D], dtype=ACC)
    for start in range(0, NQ, BLOCK_Q):
        offs_q = start + tl.arange(0, BLOCK_Q)
        qmask = offs_q < NQ
        q = _load_rows(Q, b, h, sqb, sqh, sqq, sqd, offs_q, offs_d, qmask, dmask, ACC, LOW)
        do, lse, drow = _grad_rows(DO, Lse, Drow, b, h, pid_bh, H, NQ, DH, offs_q, offs_d, qmask, dmask, ACC, LOW)
        qrb, qcb, qv, qrc, qcc, bl, bc = _query_windows(WIN, BL, BC, b, offs_q, qmask, NQ, BQ_TOTAL, ACC)
        s, in_bev, in_cam = _scores(q, k, offs_q, offs_k, qmask, kmask, b, h, M, smb, smh, smq, smk, bl, bc,
                                    qrb, qcb, qv, qrc, qcc, NB, WB, HCWC, WC, RB, RC, sm_scale,
                                    HAS_MASK, ACC, LOW)
        p = tl.exp(s - lse[:, None])
        dv += _dot(tl.trans(p).to(do.dtype), do, ACC, LOW).to(ACC)
        dp = _dot(do, tl.trans(v), ACC, LOW).to(ACC)
        ds = p * (dp - drow[:, None])
        dk += _dot(tl.trans(ds).to(q.dtype), q, ACC, LOW).to(ACC)
    ptr = pid_bh * NK * DH + offs_k[:, None] * DH + offs_d[None, :]
    tl.store(DK + ptr, (dk * sm_scale).to(DK.dtype.element_ty), mask=kmask[:, None] & dmask[None, :])
    tl.store(DV + ptr, dv.to(DV.dtype.element_ty), mask=kmask[:, None] & dmask[None, :])


@triton.jit
def _bwd_q_kernel(Q, K, V, M, BL, BC, WIN, DO, Lse, Drow, DQ, DB,
                  sqb, sqh, sqq, sqd, skb, skh, skk, skd, svb, svh, svk, svd, smb, smh, smq, smk,
                  H, NQ, NK, DH, BQ_TOTAL, sm_scale, NB, WB, HCWC, WC, RB, RC,
                  HAS_MASK: tl.constexpr, ACC: tl.constexpr, LOW: tl.constexpr,
                  BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, D: tl.constexpr):
    """dQ of one query block, and the block's dS summed over its BEV / camera windows
    (DB [2, B, H, Q])."""
    pid_q = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    offs_d = tl.arange(0, D)
    qmask = offs_q < NQ
    dmask = offs_d < DH
    q = _load_rows(Q, b, h, sqb, sqh, sqq, sqd, offs_q, offs_d, qmask, dmask, ACC, LOW)
    do, lse, drow = _grad_rows(DO, Lse, Drow, b, h, pid_bh, H, NQ, DH, offs_q, offs_d, qmask, dmask, ACC, LOW)
    qrb, qcb, qv, qrc, qcc, bl, bc = _query_windows(WIN, BL, BC, b, offs_q, qmask, NQ, BQ_TOTAL, ACC)
    dq = tl.zeros([BLOCK_Q, D], dtype=ACC)
    db_bev = tl.zeros([BLOCK_Q], dtype=ACC)
    db_cam = tl.zeros([BLOCK_Q], dtype=ACC)
    for start in range(0, NK, BLOCK_K):
        offs_k = start + tl.arange(0, BLOCK_K)
        kmask = offs_k < NK
        k = _load_rows(K, b, h, skb, skh, skk, skd, offs_k, offs_d, kmask, dmask, ACC, LOW)
        v = _load_rows(V, b, h, svb, svh, svk, svd, offs_k, offs_d, kmask, dmask, ACC, LOW)
        s, in_bev, in_cam = _scores(q, k, offs_q, offs_k, qmask, kmask, b, h, M, smb, smh, smq, smk, bl, bc,
                                    qrb, qcb, qv, qrc, qcc, NB, WB, HCWC, WC, RB, RC, sm_scale,
                                    HAS_MASK, ACC, LOW)
        p = tl.exp(s - lse[:, None])
        dp = _dot(do, tl.trans(v), ACC, LOW).to(ACC)
        ds = p * (dp - drow[:, None])
        dq += _dot(ds.to(k.dtype), k, ACC, LOW).to(ACC)
        db_bev += tl.sum(tl.where(in_bev, ds, 0.0), 1)
        db_cam += tl.sum(tl.where(in_cam, ds, 0.0), 1)
    tl.store(DQ + pid_bh * NQ * DH + offs_q[:, None] * DH + offs_d[None, :],
             (dq * sm_scale).to(DQ.dtype.element_ty), mask=qmask[:, None] & dmask[None, :])
    tl.store(DB + pid_bh * NQ + offs_q, db_bev, mask=qmask)
    tl.store(DB + tl.num_programs(1) * NQ + pid_bh * NQ + offs_q, db_cam, mask=qmask)


_TL_DTYPES = {torch.float32: tl.float32, torch.float64: tl.float64}


class KernelCall(NamedTuple):
    """One kernel launch: what `launch()` runs and what `triton_compile.py` compiles."""
    kernel: object                  # the @triton.jit function
    grid: Tuple[int, int]
    args: tuple
    constexprs: dict
    config: KernelConfig

    def launch(self):
        self.kernel[self.grid](*self.args, **self.constexprs, num_warps=self.config.num_warps,
                               num_stages=self.config.num_stages)


class _Launch:
    """Everything the three kernels need besides their tensors: windows, layout scalars,
    dtypes and the launch configurations (`triton_configs.py`).

    q, k, v are the inputs as the kernels see them: one half dtype (the tensor-core path)
    or the compute dtype. `capability` is the target GPU's (major, minor), None in the
    interpreter; `configs` overrides the configuration table (tests).
    """

    def __init__(self, q: Tensor, k: Tensor, bias, mask: Optional[Tensor],
                 capability: Optional[Tuple[int, int]] = None, configs: Optional[Dict[str, KernelConfig]] = None):
        b, h, nq, dh = q.shape
        layout = bias.layout
        self.acc = compute_dtype(q)
        self.low = q.dtype in (torch.float16, torch.bfloat16) and capability is not None
        device = q.device
        win = torch.zeros(5, b, nq, dtype=torch.int32, device=device)
        win[2] = -1
        if layout.bev_shape is not None and bias.bev_center is not None:
            win[0:2] = bias.bev_center.to(device=device, dtype=torch.int32).permute(2, 0, 1)
        if layout.cam_shape is not None and bias.cam_center is not None:
            win[2:5] = bias.cam_center.to(device=device, dtype=torch.int32).permute(2, 0, 1)
        self.win = win.contiguous()
        nb = layout.num_bev_keys
        wb = layout.bev_shape[1] if layout.bev_shape is not None else 1
        hc, wc = (layout.cam_shape[1], layout.cam_shape[2]) if layout.cam_shape is not None else (1, 1)
        self.geometry = (nb, wb, hc * wc, wc, window_radius(bias.bev_window), window_radius(bias.cam_window))
        self.mask = None if mask is None else mask.expand(b, h, nq, k.shape[2])
        self.mask_strides = (0, 0, 0, 0) if mask is None else self.mask.stride()
        self.shape = (b, h, nq, k.shape[2], dh)
        self.d = padded_head_dim(dh)
        if configs is None:
            configs = INTERPRETER if capability is None else kernel_configs(q.dtype, dh)
        self.configs = configs

    def _common(self, q, k, v):
        m = self.mask if self.mask is not None else q   # any pointer when HAS_MASK is False
        return (q, k, v, m), (*q.stride(), *k.stride(), *v.stride(), *self.mask_strides)

    def _constexprs(self, name):
        cfg = self.configs[name]
        return dict(HAS_MASK=self.mask is not None, ACC=_TL_DTYPES[self.acc], LOW=self.low,
                    BLOCK_Q=cfg.block_q, BLOCK_K=cfg.block_k, D=self.d)

    def forward(self, q, k, v, bl, bc, out, lse) -> KernelCall:
        b, h, nq, nk, dh = self.shape
        tensors, strides = self._common(q, k, v)
        cfg = self.configs['forward']
        return KernelCall(_fwd_kernel, (triton.cdiv(nq, cfg.block_q), b * h),
                          (*tensors, bl, bc, self.win, out, lse, *strides, *out.stride(), h, nq, nk, dh, b * nq,
                           1.0 / math.sqrt(dh), *self.geometry), self._constexprs('forward'), cfg)

    def backward(self, q, k, v, bl, bc, do, lse, drow, dq, dk, dv, db) -> Tuple[KernelCall, KernelCall]:
        b, h, nq, nk, dh = self.shape
        tensors, strides = self._common(q, k, v)
        common = (*strides, h, nq, nk, dh, b * nq, 1.0 / math.sqrt(dh), *self.geometry)
        kv, qc = self.configs['backward_kv'], self.configs['backward_q']
        return (KernelCall(_bwd_kv_kernel, (triton.cdiv(nk, kv.block_k), b * h),
                           (*tensors, bl, bc, self.win, do, lse, drow, dk, dv, *common),
                           self._constexprs('backward_kv'), kv),
                KernelCall(_bwd_q_kernel, (triton.cdiv(nq, qc.block_q), b * h),
                           (*tensors, bl, bc, self.win, do, lse, drow, dq, db, *common),
                           self._constexprs('backward_q'), qc))

    def forward_buffers(self, q):
        """The forward's outputs: out [B, h, Q, d] in q's dtype, lse [B, h, Q]."""
        b, h, nq, nk, dh = self.shape
        return (torch.empty(b, h, nq, dh, dtype=q.dtype, device=q.device),
                torch.empty(b, h, nq, dtype=self.acc, device=q.device))

    def backward_buffers(self, q):
        """The backward's outputs, in the compute dtype: dq, dk, dv and the bias
        gradients' per-head partials db [2, B, h, Q]."""
        b, h, nq, nk, dh = self.shape
        acc, dev = self.acc, q.device
        return (torch.empty(b, h, nq, dh, dtype=acc, device=dev), torch.empty(b, h, nk, dh, dtype=acc, device=dev),
                torch.empty(b, h, nk, dh, dtype=acc, device=dev), torch.empty(2, b, h, nq, dtype=acc, device=dev))


def kernel_inputs(q: Tensor, k: Tensor, v: Tensor, low: bool, acc: torch.dtype):
    """q, k, v as the kernels take them: all in q's half dtype on the tensor-core path
    (the products need one operand dtype), else all in the compute dtype."""
    dtype = q.dtype if low else acc
    return q.to(dtype), k.to(dtype), v.to(dtype)


class _TritonBiasAttention(torch.autograd.Function):

    @staticmethod
    def forward(ctx, q, k, v, lidar_weight, camera_weight, scale, bias, mask, capability, configs):
        dtypes = (q.dtype, k.dtype, v.dtype)
        launch = _Launch(q, k, bias, mask, capability, configs)
        q, k, v = kernel_inputs(q, k, v, launch.low, launch.acc)
        s = scale.to(launch.acc)
        bl = (s * lidar_weight.to(launch.acc)).contiguous()
        bc = (s * camera_weight.to(launch.acc)).contiguous()
        out, lse = launch.forward_buffers(q)
        launch.forward(q, k, v, bl, bc, out, lse).launch()
        ctx.save_for_backward(q, k, v, out, lse, bl, bc, lidar_weight, camera_weight, scale)
        ctx.launch, ctx.dtypes = launch, dtypes
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, bl, bc, lidar_weight, camera_weight, scale = ctx.saved_tensors
        launch = ctx.launch
        acc = launch.acc
        do = grad_out.to(q.dtype).contiguous()
        drow = (do.to(acc) * out.to(acc)).sum(-1).contiguous()            # D = rowsum(dO * O)
        dq, dk, dv, db = launch.backward_buffers(q)
        for call in launch.backward(q, k, v, bl, bc, do, lse, drow, dq, dk, dv, db):
            call.launch()
        db = db.sum(2)                                                     # over heads: [2, B, Q]
        s = scale.to(acc)
        d_lidar = (s * db[0]).to(lidar_weight.dtype) if ctx.needs_input_grad[3] else None
        d_cam = (s * db[1]).to(camera_weight.dtype) if ctx.needs_input_grad[4] else None
        d_scale = None
        if ctx.needs_input_grad[5]:
            d_scale = (lidar_weight.to(acc) * db[0] + camera_weight.to(acc) * db[1]).sum().to(scale.dtype)
        return (dq.to(ctx.dtypes[0]), dk.to(ctx.dtypes[1]), dv.to(ctx.dtypes[2]), d_lidar, d_cam, d_scale,
                None, None, None, None)


def triton_bias_attention(q: Tensor, k: Tensor, v: Tensor, bias, mask: Optional[Tensor] = None,
                          configs: Optional[Dict[str, KernelConfig]] = None) -> Tensor:
    """softmax(q k^T / sqrt(d) + bias + mask) v through the Triton kernels.

    q [B, h, Q, d], k / v [B, h, K, d] (any strides), bias a `LocalWindowBias`, mask the
    additive key-padding mask [B, 1, 1, K] (`key_padding.additive_key_padding`) without
    a fully padded sample (`local_bias_attention` handles those). `configs` overrides the launch configurations
    of `triton_configs.py` (tests run every entry in the interpreter). Returns q's dtype.
    """
    capability = None if triton_interpreted() else torch.cuda.get_device_capability(q.device)
    out = _TritonBiasAttention.apply(q, k, v, bias.lidar_weight, bias.camera_weight, bias.scale, bias, mask,
                                     capability, configs)
    return out.to(q.dtype)
