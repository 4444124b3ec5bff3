"""PETR-style transformer decoder used by CMT (Yan et al., ICCV 2023), with an attention
bias hook in every cross-attention.

`CmtTransformer` flattens the BEV and image memories into one key set in the order of a
`KeyLayout` (`key_layout.py`, which AQR's windows read) and runs `PETRTransformerDecoder`: a stack of
`PETRTransformerDecoderLayer` (self_attn -> norm -> cross_attn -> norm -> ffn -> norm,
post-norm) that returns every layer's output. Each of the three accepts `attn_bias` and
hands it to the cross-attention; see `biased_attention.py` for the bias contract.
"""
import copy
from typing import List, NamedTuple, Optional

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmdet3d.registry import MODELS

from .key_layout import KeyLayout


class Memory(NamedTuple):
    """The decoder's keys, in the order of `layout`."""
    feat: Tensor                          # [B, K, C]
    pos: Tensor                           # [B, K, C] position embedding
    key_padding_mask: Optional[Tensor]    # [B, K] bool (True = padding) or None
    layout: KeyLayout                     # where each key comes from


@MODELS.register_module()
class PETRTransformerDecoderLayer(BaseModule):
    """self-attention, norm, cross-attention (with bias), norm, FFN, norm.

    `self_attn_cfg=None` leaves the self-attention (and its norm) out: cross-attention,
    norm, FFN, norm, the layer AQR's router attends through."""

    def __init__(self, self_attn_cfg: Optional[dict], cross_attn_cfg: dict, ffn_cfg: dict,
                 norm_cfg: dict = dict(type='LN'), with_cp: bool = False, init_cfg=None):
        super().__init__(init_cfg)
        self.self_attn = MODELS.build(self_attn_cfg) if self_attn_cfg is not None else None
        self.cross_attn = MODELS.build(cross_attn_cfg)
        self.embed_dims = self.cross_attn.embed_dims
        self.ffn = FFN(**ffn_cfg)
        num_norms = 2 if self.self_attn is None else 3
        self.norms = nn.ModuleList([build_norm_layer(norm_cfg, self.embed_dims)[1] for _ in range(num_norms)])
        self.with_cp = with_cp

    def _forward(self, query, key, value, query_pos, key_pos, self_attn_mask, key_padding_mask,
                 attn_bias):
        norms = iter(self.norms)
        if self.self_attn is not None:
            query = next(norms)(self.self_attn(query, query, query, query_pos=query_pos,
                                               key_pos=query_pos, attn_mask=self_attn_mask))
        query = next(norms)(self.cross_attn(query, key, value, query_pos=query_pos,
                                            key_pos=key_pos, key_padding_mask=key_padding_mask,
                                            attn_bias=attn_bias))
        return next(norms)(self.ffn(query))

    def forward(self, query: Tensor, key: Tensor, value: Tensor, query_pos: Optional[Tensor] = None,
                key_pos: Optional[Tensor] = None, self_attn_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, attn_bias=None) -> Tensor:
        args = (query, key, value, query_pos, key_pos, self_attn_mask, key_padding_mask, attn_bias)
        if self.with_cp and self.training and query.requires_grad:
            # activation checkpointing: recompute this layer in the backward pass
            return checkpoint(self._forward, *args, use_reentrant=False)
        return self._forward(*args)


@MODELS.register_module()
class PETRTransformerDecoder(BaseModule):
    """`num_layers` copies of a decoder layer; returns [num_layers, B, Q, C] (intermediate)."""

    def __init__(self, layer_cfg: dict, num_layers: int, return_intermediate: bool = True,
                 post_norm_cfg: Optional[dict] = dict(type='LN'), init_cfg=None):
        super().__init__(init_cfg)
        self.layers = nn.ModuleList([MODELS.build(copy.deepcopy(layer_cfg)) for _ in range(num_layers)])
        self.embed_dims = self.layers[0].embed_dims
        self.post_norm = build_norm_layer(post_norm_cfg, self.embed_dims)[1] if post_norm_cfg else None
        self.return_intermediate = return_intermediate

    def forward(self, query, key, value, query_pos=None, key_pos=None, self_attn_mask=None,
                key_padding_mask=None, attn_bias=None) -> Tensor:
        outs: List[Tensor] = []
        for layer in self.layers:
            query = layer(query, key, value, query_pos, key_pos, self_attn_mask, key_padding_mask,
                          attn_bias)
            if self.return_intermediate:
                outs.append(self.post_norm(query) if self.post_norm is not None else query)
        if not self.return_intermediate:
            outs.append(self.post_norm(query) if self.post_norm is not None else query)
        return torch.stack(outs)


@MODELS.register_module()
class CmtTransformer(BaseModule):
    """Joins BEV and image memories and decodes the queries against them.

    memory(bev [B, C, H, W] or None, img [B, V, C, h, w] or None, bev_pos [B, H*W, C],
           img_pos [B, V*h*w, C], img_padding_mask [B, V*h*w] bool) -> Memory
    forward(query [B, Q, C], query_pos [B, Q, C], memory, self_attn_mask [Q, Q] bool,
            attn_bias) -> [num_layers, B, Q, C]

    The head builds the memory once and hands it to the AQR and the decoder.
    """

    def __init__(self, decoder: dict, init_cfg=None):
        super().__init__(init_cfg)
        self.decoder = MODELS.build(decoder)
        self.embed_dims = self.decoder.embed_dims

    def init_weights(self):
        super().init_weights()
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def memory(self, bev: Optional[Tensor], img: Optional[Tensor], bev_pos: Optional[Tensor] = None,
               img_pos: Optional[Tensor] = None, img_padding_mask: Optional[Tensor] = None) -> Memory:
        """The decoder's keys: flattened features, their position embeddings, the key
        padding mask (None without image padding) and their `KeyLayout`."""
        layout = KeyLayout.from_features(bev, img)
        return Memory(layout.flatten(bev, img), layout.concat(bev_pos, img_pos),
                      layout.key_padding_mask(img_padding_mask), layout)

    def forward(self, query: Tensor, query_pos: Tensor, memory: Memory, self_attn_mask=None,
                attn_bias=None) -> Tensor:
        return self.decoder(query, memory.feat, memory.feat, query_pos=query_pos, key_pos=memory.pos,
                            self_attn_mask=self_attn_mask, key_padding_mask=memory.key_padding_mask,
                            attn_bias=attn_bias)
