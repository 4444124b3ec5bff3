"""The compact description of AQR's local-window attention bias.

For every query the bias is `scale * lidar_weight` on the BEV keys inside a square window
around the query's BEV cell, `scale * camera_weight` on the camera keys inside a square
window around its pixel in the one view that sees it, and 0 elsewhere. Stored that way it
costs O(B * Q) numbers; the dense [B, Q, K] tensor (387 MB at batch 2, 900 queries and
56,400 keys) is only built by `to_dense()`, for debugging and tests.

Key order (shared with `CmtTransformer.memory`): the H*W BEV keys first,
row-major, then the V*h*w camera keys, view-major then row-major. Windows clip at the
borders and never wrap across rows or views; a query with view -1 (seen by no camera) has
no camera window. `local_bias_attention(q, k, v, bias)` computes the biased attention
exactly without the dense tensor (`local_bias_attention.py`).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ...ops.window_attention_cpu import PackedWindows, pack_windows
from .local_bias_attention import local_bias_attention
from .window_groups import WindowGroup, WindowPart, group_queries, window_parts

WindowSize = Union[int, Sequence[int]]


def check_window_size(value, key: str = 'window_size') -> int:
    """An odd positive int, else a ValueError naming the config key."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % 2 == 0:
        raise ValueError(f'{key} must be an odd positive integer (1, 3, 5, ...), got {value!r}')
    return value


def split_window_size(window_size: WindowSize, key: str = 'window_size') -> Tuple[int, int]:
    """odd int -> (w, w); (bev, cam) -> checked pair."""
    if isinstance(window_size, (tuple, list)):
        if len(window_size) != 2:
            raise ValueError(f'{key} must be an odd int or a (bev_window, cam_window) pair, got {window_size!r}')
        return check_window_size(window_size[0], f'{key}[0]'), check_window_size(window_size[1], f'{key}[1]')
    w = check_window_size(window_size, key)
    return w, w


def window_offsets(window: int, rows: int, cols: int, device) -> Tuple[Tensor, Tensor]:
    """(d_row, d_col) of a window, cut to what can land on a rows x cols grid at all."""
    r_row = min((window - 1) // 2, rows - 1)
    r_col = min((window - 1) // 2, cols - 1)
    dr, dc = torch.meshgrid(torch.arange(-r_row, r_row + 1, device=device),
                            torch.arange(-r_col, r_col + 1, device=device), indexing='ij')
    return dr.reshape(-1), dc.reshape(-1)


class LocalWindowBias:
    """See the module docstring.

    Args:
        bev_shape: (H, W) of the BEV grid, or None when the memory has no BEV keys.
        cam_shape: (V, h, w) of the camera feature maps, or None without camera keys.
        bev_center: LongTensor [B, Q, 2], (row, col) of each query's BEV cell.
        cam_center: LongTensor [B, Q, 3], (view, row, col); view -1 = seen by no camera.
        lidar_weight, camera_weight: float [B, Q] (differentiable).
        window_size: odd int, or (bev_window, cam_window).
        scale: float or 0-dim tensor (differentiable when learnable).
        chunk_elements: memory budget (elements) of one block of `local_bias_attention`'s
            window pass (and of its chunked fallback), which bounds its extra memory.
            2^19 (2 MB blocks) keeps the benchmark's peak within 1.25x of unbiased SDPA.
    """

    def __init__(self, bev_shape: Optional[Sequence[int]], cam_shape: Optional[Sequence[int]],
                 bev_center: Optional[Tensor], cam_center: Optional[Tensor], lidar_weight: Tensor,
                 camera_weight: Tensor, window_size: WindowSize, scale: Union[float, Tensor] = 1.0,
                 chunk_elements: int = 1 << 19):
        self.bev_shape = tuple(int(s) for s in bev_shape) if bev_shape is not None else None
        self.cam_shape = tuple(int(s) for s in cam_shape) if cam_shape is not None else None
        if self.bev_shape is None and self.cam_shape is None:
            raise ValueError('LocalWindowBias needs a BEV grid, camera maps or both')
        self.bev_window, self.cam_window = split_window_size(window_size)
        b, q = lidar_weight.shape
        if camera_weight.shape != (b, q):
            raise ValueError(f'camera_weight {tuple(camera_weight.shape)} != lidar_weight {(b, q)}')
        if self.bev_shape is not None and (bev_center is None or bev_center.shape != (b, q, 2)):
            raise ValueError(f'bev_center must be [B, Q, 2] = {(b, q, 2)}')
        if self.cam_shape is not None:
            if cam_center is None or cam_center.shape != (b, q, 3):
                raise ValueError(f'cam_center must be [B, Q, 3] = {(b, q, 3)}')
            views = cam_center[..., 0]
            if ((views < -1) | (views >= self.cam_shape[0])).any():
                raise ValueError(f'cam_center views must be in [-1, {self.cam_shape[0] - 1}]')
        self.bev_center, self.cam_center = bev_center, cam_center
        self.lidar_weight, self.camera_weight = lidar_weight, camera_weight
        self.scale = scale if isinstance(scale, Tensor) else lidar_weight.new_tensor(float(scale))
        self.chunk_elements = chunk_elements
        self._groups = {}
        self._packed = None

    @property
    def num_bev_keys(self) -> int:
        return 0 if self.bev_shape is None else self.bev_shape[0] * self.bev_shape[1]

    @property
    def num_keys(self) -> int:
        cam = 0 if self.cam_shape is None else self.cam_shape[0] * self.cam_shape[1] * self.cam_shape[2]
        return self.num_bev_keys + cam

    def parts(self) -> List[WindowPart]:
        """The windows as `window_groups` parts."""
        return window_parts(self.bev_shape, self.cam_shape, self.bev_center, self.cam_center,
                            self.bev_window, self.cam_window)

    def groups(self, heads: int, head_dim: int) -> List[WindowGroup]:
        """The grouped windows `local_bias_attention` works on, built once and shared by
        every decoder layer that applies this bias (they depend on the centres only,
        which are fixed at construction)."""
        key = (heads, head_dim, self.chunk_elements)
        if key not in self._groups:
            self._groups[key] = group_queries(self.parts(), heads, head_dim, self.chunk_elements)
        return self._groups[key]

    def packed_windows(self) -> PackedWindows:
        """The windows as the compiled kernel takes them, built once per bias."""
        if self._packed is None:
            self._packed = pack_windows(self.parts())
        return self._packed

    def window_keys(self) -> Tuple[Tensor, Tensor, int]:
        """Key index [B, Q, n] of every window slot, its validity [B, Q, n] and how many of
        the n slots are BEV slots (they come first). Invalid slots point at key 0."""
        device = self.lidar_weight.device
        idx, valid = [], []
        n_bev = 0
        if self.bev_shape is not None:
            h, w = self.bev_shape
            dr, dc = window_offsets(self.bev_window, h, w, device)
            rows = self.bev_center[..., :1].long() + dr
            cols = self.bev_center[..., 1:2].long() + dc
            ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
            idx.append(torch.where(ok, rows * w + cols, 0))
            valid.append(ok)
            n_bev = dr.numel()
        if self.cam_shape is not None:
            v, h, w = self.cam_shape
            dr, dc = window_offsets(self.cam_window, h, w, device)
            view = self.cam_center[..., :1].long()
            rows = self.cam_center[..., 1:2].long() + dr
            cols = self.cam_center[..., 2:3].long() + dc
            ok = (view >= 0) & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
            idx.append(torch.where(ok, self.num_bev_keys + (view * h + rows) * w + cols, 0))
            valid.append(ok)
        return torch.cat(idx, -1), torch.cat(valid, -1), n_bev

    def window_values(self, n_bev: int, n: int) -> Tensor:
        """Bias value of each window slot [B, Q, n] (before validity)."""
        lw = self.lidar_weight[..., None].expand(-1, -1, n_bev)
        cw = self.camera_weight[..., None].expand(-1, -1, n - n_bev)
        return self.scale * torch.cat([lw, cw], -1)

    def to_dense(self) -> Tensor:
        """The dense [B, Q, K] bias. Debugging and tests only: it is what we avoid."""
        idx, valid, n_bev = self.window_keys()
        values = self.window_values(n_bev, idx.shape[-1]) * valid
        dense = values.new_zeros(*idx.shape[:2], self.num_keys)
        return dense.scatter_add(-1, idx, values)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """The `BiasedMultiheadAttention` hook: exact biased attention, never dense."""
        return local_bias_attention(q, k, v, self, mask=mask)
