"""Output branches of the CMT head: decoder features -> centre, height, dim, rot, vel, cls
(CMT: Yan et al., ICCV 2023, github.com/junjie18/CMT).

Two registered variants, chosen by `CmtHead(task_head=dict(type=...))`; the head adds
`embed_dims`, `heads` and `num_layers`:

* `LayerwiseTaskHead` (official CMT, github.com/junjie18/CMT `SeparateTaskHead`): every
  decoder layer has its own small MLP per branch (hidden width 64, layer norm, ReLU). The
  layers' MLPs run as one grouped 1x1 `Conv1d` with `groups = num_layers`, with a layer norm
  per group, so their parameters have the official shapes. Convolutions start from Kaiming
  (fan-out) initialisation and the classification bias from -2.19 (prior 0.1).
* `SeparateTaskHead`: one MLP per branch shared by all decoder layers (hidden width
  embed_dims), a lighter variant for small CPU models.

Both take [L, B, Q, C] and return per branch [L, B, Q, out].
"""
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import bias_init_with_prob, kaiming_init
from torch import Tensor, nn

from mmdet3d.registry import MODELS


class GroupLayerNorm1d(nn.Module):
    """Layer norm over the channels of each of `groups` channel groups of [N, G*C, L]."""

    def __init__(self, channels: int, groups: int = 1, eps: float = 1e-6):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        n, c, length = x.shape
        y = x.view(n, self.groups, c // self.groups, length).transpose(2, 3)
        y = F.layer_norm(y, (c // self.groups,), eps=self.eps).transpose(2, 3).reshape(n, c, length)
        return y * self.weight.view(1, c, 1) + self.bias.view(1, c, 1)


@MODELS.register_module()
class LayerwiseTaskHead(nn.Module):
    """One MLP per (decoder layer, branch), as grouped 1x1 convolutions.

    Args:
        embed_dims: decoder channels.
        heads: branch name -> (output channels, number of layers incl. the output layer).
        num_layers: decoder layers (the groups).
        hidden_dims: hidden width of each MLP (CMT: 64).
        init_bias: initial bias of the 'cls' output (CMT: -2.19).
    """

    def __init__(self, embed_dims: int, heads: Dict[str, Tuple[int, int]], num_layers: int,
                 hidden_dims: int = 64, init_bias: float = -2.19):
        super().__init__()
        self.num_layers, self.init_bias = num_layers, init_bias
        self.branches = nn.ModuleDict()
        g = num_layers
        for name, (out_dims, depth) in heads.items():
            layers: List[nn.Module] = []
            c_in = embed_dims
            for _ in range(depth - 1):
                layers += [nn.Conv1d(c_in * g, hidden_dims * g, 1, groups=g, bias=False),
                           GroupLayerNorm1d(hidden_dims * g, groups=g), nn.ReLU(inplace=True)]
                c_in = hidden_dims
            layers.append(nn.Conv1d(c_in * g, out_dims * g, 1, groups=g, bias=True))
            self.branches[name] = nn.Sequential(*layers)

    def init_weights(self):
        for branch in self.branches.values():
            for m in branch:
                if isinstance(m, nn.Conv1d):
                    kaiming_init(m, mode='fan_out', nonlinearity='relu', distribution='normal')
        self.branches['cls'][-1].bias.data.fill_(self.init_bias)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        num_layers, b, q, c = x.shape
        if num_layers != self.num_layers:
            raise ValueError(f'LayerwiseTaskHead was built for {self.num_layers} decoder layers, got {num_layers}')
        x = x.permute(1, 0, 3, 2).reshape(b, num_layers * c, q)               # [B, L*C, Q]
        return {name: branch(x).view(b, num_layers, -1, q).permute(1, 0, 3, 2)
                for name, branch in self.branches.items()}


@MODELS.register_module()
class SeparateTaskHead(nn.Module):
    """One MLP per branch (Linear, LayerNorm, ReLU, ..., Linear), shared by all decoder layers
    (`num_layers` is accepted for the common interface and not used)."""

    def __init__(self, embed_dims: int, heads: Dict[str, Tuple[int, int]], num_layers: int = None,
                 init_bias: float = bias_init_with_prob(0.01)):
        super().__init__()
        self.init_bias = init_bias
        self.branches = nn.ModuleDict()
        for name, (out_dims, num_layers) in heads.items():
            layers: List[nn.Module] = []
            for _ in range(num_layers - 1):
                layers += [nn.Linear(embed_dims, embed_dims), nn.LayerNorm(embed_dims), nn.ReLU(inplace=True)]
            layers.append(nn.Linear(embed_dims, out_dims))
            self.branches[name] = nn.Sequential(*layers)

    def init_weights(self):
        nn.init.constant_(self.branches['cls'][-1].bias, self.init_bias)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        return {name: branch(x) for name, branch in self.branches.items()}
