"""AQR weight generator: per-query LiDAR / camera weights in [-1, 1] (issue #4).

After MoME's Adaptive Query Router (Park et al., "MoME", CVPR 2025), made continuous
(DESIGN.md "AQR", seed 004). MoME routes each query to one expert; here a query gets two
weights that `AttentionBiasGenerator` turns into an additive bias on the BEV / camera keys
around it in every decoder cross-attention.

Per query:
1. its reference point (normalised to `pc_range`) is located on the BEV grid (cell) and in
   the first camera that sees it (view, row, col on the feature map), through the one
   projection helper (`plugin/models/utils/projection.py`); a query no camera sees gets
   no camera window (MoME's fall-back to view 0, pixel (0, 0) is not reproduced);
2. one PETR-style decoder layer without self-attention (cross-attention, norm, FFN, norm)
   attends only to the keys of its local attention mask (LAM): a `window_sizes[0]` square
   on the BEV grid and a `window_sizes[1]` square in its view. The window keys are
   gathered per query (in chunks, recomputed in the backward when large), never through a dense
   [queries, keys] mask;
3. Linear(embed_dims, 2) + tanh gives (lidar_weight, camera_weight). The linear layer
   starts at zero, so a fresh model starts with no bias, i.e. as plain CMT.
"""
import math
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmdet3d.registry import MODELS

from ..utils.projection import bev_cells, denormalize_points, first_view_cells
from .local_window_bias import LocalWindowBias, split_window_size


class AQRWeights(NamedTuple):
    """What the AQR hands to the bias generator (all [B, Q, ...])."""
    lidar_weight: Tensor            # [B, Q] in [-1, 1]
    camera_weight: Tensor           # [B, Q] in [-1, 1]
    bev_center: Optional[Tensor]    # [B, Q, 2] long (row, col), None without BEV
    cam_center: Optional[Tensor]    # [B, Q, 3] long (view, row, col), view -1 = unseen


def window_attention(q: Tensor, k: Tensor, v: Tensor, idx: Tensor, valid: Tensor) -> Tensor:
    """Multi-head attention of each query over its own window keys only.

    q [B, Qc, h, d]; k, v [B, K, h, d]; idx, valid [B, Qc, n] (window slot -> key).
    A query without a valid slot returns zeros.
    """
    b, qc, h, d = q.shape
    n, num_k = idx.shape[-1], k.shape[1]
    # one index_select over the flattened batch: about 2x faster on CPU than advanced
    # indexing, and its backward is an index_add_
    flat = (idx + torch.arange(b, device=idx.device).view(b, 1, 1) * num_k).reshape(-1)
    kg = k.reshape(b * num_k, h * d).index_select(0, flat).view(b, qc, n, h, d)
    vg = v.reshape(b * num_k, h * d).index_select(0, flat).view(b, qc, n, h, d)
    s = torch.einsum('bqhd,bqnhd->bqhn', q, kg) / math.sqrt(d)
    s = s.masked_fill(~valid[:, :, None], float('-inf'))
    dead = ~valid.any(-1)                                                # [B, Qc]
    p = torch.softmax(s.masked_fill(dead[..., None, None], 0.0), -1)
    out = torch.einsum('bqhn,bqnhd->bqhd', p, vg)
    return out.masked_fill(dead[..., None, None], 0.0)


@MODELS.register_module()
class AQRWeightGenerator(BaseModule):
    """See the module docstring.

    Args:
        embed_dims: query / memory channels (the head's embed_dims).
        pc_range: point-cloud range, to turn normalised reference points into metres.
        window_sizes: (BEV window, camera window) of the LAM, odd ints (MoME: 5 and 15).
        num_heads: heads of the LAM cross-attention (4 in the design).
        feedforward_channels: FFN hidden width (default 2 * embed_dims).
        dropout: dropout of the attention output and FFN.
        chunk_queries: queries per gathered block.
        cp_threshold_mb: when the gathered windows of all queries (keys and values) would
            exceed this, each block is recomputed in the backward instead of stored
            (activation checkpointing); below it storing them is cheaper. None = never.
    """

    def __init__(self, embed_dims: int, pc_range: Sequence[float],
                 window_sizes: Tuple[int, int] = (5, 15), num_heads: int = 4,
                 feedforward_channels: Optional[int] = None, dropout: float = 0.0,
                 chunk_queries: int = 256, cp_threshold_mb: Optional[float] = 256.0, init_cfg=None):
        super().__init__(init_cfg)
        self.window_sizes = split_window_size(tuple(window_sizes), 'aqr_cfg.window_sizes')
        if embed_dims % num_heads:
            raise ValueError(f'aqr_cfg.num_heads={num_heads} does not divide embed_dims={embed_dims}')
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.pc_range = list(pc_range)
        self.chunk_queries, self.cp_threshold_mb = chunk_queries, cp_threshold_mb
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.k_proj = nn.Linear(embed_dims, embed_dims)
        self.v_proj = nn.Linear(embed_dims, embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        self.drop = nn.Dropout(dropout)
        self.ffn = FFN(embed_dims=embed_dims, feedforward_channels=feedforward_channels or 2 * embed_dims,
                       ffn_drop=dropout)
        self.norms = nn.ModuleList([build_norm_layer(dict(type='LN'), embed_dims)[1] for _ in range(2)])
        self.weight_head = nn.Linear(embed_dims, 2)

    def init_weights(self):
        super().init_weights()
        nn.init.zeros_(self.weight_head.weight)
        nn.init.zeros_(self.weight_head.bias)

    def window_centres(self, ref: Tensor, bev_shape, cam_shape, lidar2img: Optional[Tensor],
                       img_metas) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """BEV (row, col) and camera (view, row, col) of every reference point."""
        bev_center = bev_cells(ref, bev_shape) if bev_shape is not None else None
        cam_center = None
        if cam_shape is not None and lidar2img is not None:
            pad = img_metas[0].get('input_shape', img_metas[0].get('pad_shape'))[:2]
            cam_center = first_view_cells(denormalize_points(ref, self.pc_range), lidar2img,
                                          [m['img_shape'] for m in img_metas], pad, cam_shape[1:])
        return bev_center, cam_center

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, idx: Tensor, valid: Tensor) -> Tensor:
        gathered_mb = 2 * idx.numel() * q.shape[2] * q.shape[3] * q.element_size() / 2**20
        recompute = (self.cp_threshold_mb is not None and gathered_mb > self.cp_threshold_mb
                     and torch.is_grad_enabled() and q.requires_grad)
        outs = []
        for start in range(0, q.shape[1], self.chunk_queries):
            rows = slice(start, start + self.chunk_queries)
            args = (q[:, rows], k, v, idx[:, rows], valid[:, rows])
            if recompute:
                outs.append(checkpoint(window_attention, *args, use_reentrant=False))
            else:
                outs.append(window_attention(*args))
        return torch.cat(outs, 1)

    def forward(self, ref: Tensor, query: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor,
                key_padding_mask: Optional[Tensor], bev_shape, cam_shape, lidar2img: Optional[Tensor],
                img_metas) -> AQRWeights:
        """ref [B, Q, 3] normalised; query/query_pos [B, Q, C]; memory/memory_pos [B, K, C]
        in the decoder's key order; key_padding_mask [B, K] (True = padding) or None;
        bev_shape (H, W) or None; cam_shape (V, h, w) or None."""
        b, nq, c = query.shape
        bev_center, cam_center = self.window_centres(ref, bev_shape, cam_shape, lidar2img, img_metas)
        zeros = query.new_zeros(b, nq)
        lam = LocalWindowBias(bev_shape, cam_shape if cam_center is not None else None, bev_center, cam_center,
                              zeros, zeros, self.window_sizes)
        if lam.num_keys != memory.shape[1]:
            raise ValueError(f'AQR: memory has {memory.shape[1]} keys, the grids describe {lam.num_keys}')
        idx, valid, _ = lam.window_keys()
        if key_padding_mask is not None:
            valid = valid & ~torch.gather(key_padding_mask, 1, idx.view(b, -1)).view_as(valid)
        h = self.num_heads
        q = self.q_proj(query + query_pos).view(b, nq, h, -1)
        k = self.k_proj(memory + memory_pos).view(b, -1, h, c // h)
        v = self.v_proj(memory).view(b, -1, h, c // h)
        attn = self._attend(q, k, v, idx, valid).reshape(b, nq, c)
        x = self.norms[0](query + self.drop(self.out_proj(attn)))
        x = self.norms[1](self.ffn(x))
        weights = torch.tanh(self.weight_head(x))
        return AQRWeights(weights[..., 0], weights[..., 1], bev_center, cam_center)
