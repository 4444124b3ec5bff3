"""CMT detection head (Cross Modal Transformer, Yan et al., ICCV 2023), mmdet3d 1.x port.

Queries are learnable 3D reference points (normalised to the point-cloud range). Their
position embedding is the sum of a BEV part (sine of x, y -> MLP) and a camera part (the
ray through the point's projection in each view that sees it, lifted at `depth_num`
depths -> MLP; zero where no camera sees it). The memory is the BEV map (with the BEV
embedding of its cell centres) followed by all image feature pixels (with their ray
embeddings); `CmtTransformer` decodes the queries against it, every layer's output goes
through one `SeparateTaskHead` per task group, and training adds query denoising (DN),
Hungarian assignment, focal + L1 losses on every layer. Prediction is NMS-free.

`query_content` chooses what the queries start from: 'zeros' (CMT: content is zero, the
queries are their position embeddings only) or 'bev' (the LiDAR BEV feature bilinearly
sampled at each reference point, through a linear layer: the query initialisation of
two-stage / TransFusion-style heads, which converges in far fewer iterations; it needs a
BEV map and falls back to zeros without one).

`aux_heatmap_cfg` (optional, training only) adds a dense CenterPoint-style class-heatmap
loss on the BEV map (`BEVHeatmapAux`, `loss_heatmap`); inference is unchanged.

`aqr_cfg` + `attn_bias_cfg` (optional, together; issue #4): `AQRWeightGenerator` gives
every query a LiDAR and a camera weight from a LAM-restricted attention over the memory,
and `AttentionBiasGenerator` turns them into a `LocalWindowBias` that every decoder
cross-attention adds to its scores, exactly and without a dense [B, Q, K] tensor.

`triplane_cfg` (optional, issue #6) = dict(in_channels, reduce='sum'): given the planes of
`TriplaneNeck`, every query's content gets LayerNorm -> Linear of the triplane features
sampled at its reference point (`sample_triplane`). The Linear starts at zero, so the
head starts as it would without the triplane.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.layers.transformer import inverse_sigmoid
from mmdet.utils import reduce_mean
from mmengine.model import BaseModule, bias_init_with_prob
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet3d.registry import MODELS, TASK_UTILS
from mmdet3d.structures import LiDARInstance3DBoxes

from ..task_modules.box3d_coding import encode_boxes
from ..utils.bev_sampling import sample_bev
from ..utils.triplane_sampling import sample_triplane
from ..utils.position_embedding import BEVPositionEmbedding, CameraRayEmbedding
from ..utils.projection import (denormalize_points, inside_image, padded_input_shape, project_points, stack_lidar2img,
                                visible_mask)
from .query_denoising import build_dn_queries


class SeparateTaskHead(nn.Module):
    """One MLP branch per output (centre, height, dim, rot, vel, cls) for a task group."""

    def __init__(self, embed_dims: int, heads: Dict[str, Tuple[int, int]]):
        super().__init__()
        self.branches = nn.ModuleDict()
        for name, (out_dims, num_layers) in heads.items():
            layers: List[nn.Module] = []
            for _ in range(num_layers - 1):
                layers += [nn.Linear(embed_dims, embed_dims), nn.LayerNorm(embed_dims), nn.ReLU(inplace=True)]
            layers.append(nn.Linear(embed_dims, out_dims))
            self.branches[name] = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        return {name: branch(x) for name, branch in self.branches.items()}


@MODELS.register_module()
class CmtHead(BaseModule):
    """See the module docstring. Grid sizes and ranges all come from the config/inputs."""

    def __init__(self,
                 class_names: Sequence[str],
                 tasks: Sequence[Sequence[str]],
                 pc_range: Sequence[float],
                 in_channels_bev: Optional[int] = 512,
                 in_channels_img: Optional[int] = 256,
                 embed_dims: int = 256,
                 num_query: int = 900,
                 depth_num: int = 64,
                 common_heads: dict = dict(center=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)),
                 num_cls_layers: int = 2,
                 transformer: dict = None,
                 bbox_coder: dict = dict(type='NMSFreeCoder', max_num=300),
                 assigner: dict = dict(type='HungarianAssigner3D'),
                 loss_cls: dict = dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                       loss_weight=2.0),
                 loss_bbox: dict = dict(type='mmdet.L1Loss', loss_weight=0.25),
                 code_weights: Sequence[float] = (1., 1., 1., 1., 1., 1., 1., 1., 0.2, 0.2),
                 dn_cfg: Optional[dict] = dict(num_groups=10, box_noise_scale=1.0, split=0.75),
                 aqr_cfg: Optional[dict] = None,
                 attn_bias_cfg: Optional[dict] = None,
                 query_content: str = 'zeros',
                 aux_heatmap_cfg: Optional[dict] = None,
                 triplane_cfg: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.class_names = list(class_names)
        self.tasks = [list(t) for t in tasks]
        unknown = {c for t in self.tasks for c in t} - set(self.class_names)
        if unknown:
            raise ValueError(f'pts_bbox_head.tasks names classes {sorted(unknown)} that are not in '
                             f'class_names {self.class_names}')
        self.pc_range = list(pc_range)
        self.embed_dims, self.num_query = embed_dims, num_query
        self.dn_cfg = dn_cfg
        self.train_cfg, self.test_cfg = train_cfg, test_cfg
        self.reference_points = nn.Embedding(num_query, 3)
        self.bev_proj = nn.Conv2d(in_channels_bev, embed_dims, 1) if in_channels_bev else None
        self.img_proj = nn.Conv2d(in_channels_img, embed_dims, 1) \
            if in_channels_img and in_channels_img != embed_dims else nn.Identity()
        self.bev_embedding = BEVPositionEmbedding(embed_dims)
        self.rv_embedding = CameraRayEmbedding(embed_dims, pc_range, depth_num=depth_num)
        self.transformer = MODELS.build(transformer)
        self.task_heads = nn.ModuleList()
        for task in self.tasks:
            heads = copy.deepcopy(dict(common_heads))
            heads['cls'] = (len(task), num_cls_layers)
            self.task_heads.append(SeparateTaskHead(embed_dims, heads))
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self.assigner = TASK_UTILS.build(assigner)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        # per task: global label (num_classes = background) -> task-local label
        maps = torch.stack([torch.tensor([task.index(c) if c in task else len(task) for c in self.class_names]
                                         + [len(task)]) for task in self.tasks])
        self.register_buffer('task_label_maps', maps, persistent=False)
        self.register_buffer('code_weights', torch.tensor(code_weights, dtype=torch.float32), persistent=False)
        if (aqr_cfg is None) != (attn_bias_cfg is None):
            raise ValueError('pts_bbox_head.aqr_cfg and pts_bbox_head.attn_bias_cfg go together: the AQR '
                             'makes the weights, the bias generator applies them; set both or neither')
        self.aqr = self.attn_bias_generator = None
        if aqr_cfg is not None:
            aqr = dict(type='AQRWeightGenerator', embed_dims=embed_dims, pc_range=self.pc_range)
            aqr.update(aqr_cfg)
            self.aqr = MODELS.build(aqr)
            bias = dict(type='AttentionBiasGenerator')
            bias.update(attn_bias_cfg)
            self.attn_bias_generator = MODELS.build(bias)
        if query_content not in ('zeros', 'bev'):
            raise ValueError(f"pts_bbox_head.query_content must be 'zeros' or 'bev', got {query_content!r}")
        self.content_proj = nn.Linear(embed_dims, embed_dims) if query_content == 'bev' else None
        self.aux_heatmap = None
        if aux_heatmap_cfg is not None:
            if not in_channels_bev:
                raise ValueError('pts_bbox_head.aux_heatmap_cfg needs a BEV map (in_channels_bev)')
            aux = dict(type='BEVHeatmapAux', in_channels=in_channels_bev, num_classes=len(self.class_names),
                       pc_range=self.pc_range)
            aux.update(aux_heatmap_cfg)
            self.aux_heatmap = MODELS.build(aux)
        self.triplane_query = None
        if triplane_cfg is not None:
            unknown = set(triplane_cfg) - {'in_channels', 'reduce'}
            if 'in_channels' not in triplane_cfg or unknown:
                raise ValueError("pts_bbox_head.triplane_cfg takes in_channels (the planes' channels) and "
                                 f"reduce ('sum' | 'concat'); got {dict(triplane_cfg)}")
            self.triplane_reduce = triplane_cfg.get('reduce', 'sum')
            if self.triplane_reduce not in ('sum', 'concat'):
                raise ValueError(f"pts_bbox_head.triplane_cfg.reduce must be 'sum' or 'concat', "
                                 f"got {self.triplane_reduce!r}")
            self.triplane_channels = int(triplane_cfg['in_channels'])
            width = self.triplane_channels * (3 if self.triplane_reduce == 'concat' else 1)
            self.triplane_query = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, embed_dims))

    def init_weights(self):
        super().init_weights()
        self.transformer.init_weights()
        nn.init.uniform_(self.reference_points.weight, 0, 1)
        for head in self.task_heads:
            nn.init.constant_(head.branches['cls'][-1].bias, bias_init_with_prob(0.01))
        if self.triplane_query is not None:
            nn.init.zeros_(self.triplane_query[-1].weight)
            nn.init.zeros_(self.triplane_query[-1].bias)

    # ------------------------------------------------------------------ embeddings
    def _bev_memory(self, bev_feat: Tensor) -> Tuple[Tensor, Tensor]:
        """Projected BEV map and the embedding of its cell centres ([B, H*W, C])."""
        bev = self.bev_proj(bev_feat)
        b, _, h, w = bev.shape
        ys, xs = torch.meshgrid(torch.arange(h, device=bev.device), torch.arange(w, device=bev.device),
                                indexing='ij')
        # rows are y, columns x (mmdet3d's scatter / sparse encoders lay the canvas out so)
        xy = torch.stack([(xs + 0.5) / w, (ys + 0.5) / h], -1).view(-1, 2).to(bev.dtype)
        return bev, self.bev_embedding(xy)[None].expand(b, -1, -1)

    def _img_memory(self, img_feats: Tensor, lidar2img: Tensor, img_metas) -> Tuple[Tensor, Tensor, Tensor]:
        """Projected image maps, ray embeddings [B, V*h*w, C], padding mask [B, V*h*w]."""
        b, v, c, h, w = img_feats.shape
        img = self.img_proj(img_feats.flatten(0, 1)).view(b, v, -1, h, w)
        pad_h, pad_w = padded_input_shape(img_metas)
        ys, xs = torch.meshgrid(torch.arange(h, device=img.device), torch.arange(w, device=img.device),
                                indexing='ij')
        uv = torch.stack([(xs + 0.5) * pad_w / w, (ys + 0.5) * pad_h / h], -1).view(1, 1, -1, 2)
        uv = uv.to(img.dtype).expand(b, v, -1, -1)
        pos = self.rv_embedding(uv, lidar2img).flatten(1, 2)
        inside = inside_image(uv, [m['img_shape'] for m in img_metas])   # padding is not image
        return img, pos, ~inside.flatten(1, 2)

    def query_embedding(self, ref: Tensor, lidar2img: Optional[Tensor], img_metas) -> Tensor:
        """BEV part + camera part (mean over the views that see the point, else zero)."""
        emb = self.bev_embedding(ref[..., :2])
        if lidar2img is not None:
            pts = denormalize_points(ref, self.pc_range)
            uv, depth = project_points(pts, lidar2img)
            seen = visible_mask(uv, depth, [m['img_shape'] for m in img_metas]).to(ref.dtype)  # [B, V, N]
            cam = self.rv_embedding(uv, lidar2img)                                          # [B, V, N, C]
            cam = (cam * seen[..., None]).sum(1) / seen.sum(1).clamp(min=1)[..., None]
            emb = emb + cam
        return emb

    # ------------------------------------------------------------------ forward
    def forward(self, bev_feat: Optional[Tensor], img_feats: Optional[Tensor], img_metas: List[dict],
                gt_boxes: Optional[List[Tensor]] = None, gt_labels: Optional[List[Tensor]] = None,
                triplane: Optional[Tensor] = None):
        """Returns (per-task list of dict(cls [L, B, N, Ct], codes [L, B, N, 10]), dn_meta).
        `triplane` [B, 3, C, T, T]: the planes of `TriplaneNeck` (used with `triplane_cfg`)."""
        ref_feat = bev_feat if bev_feat is not None else img_feats
        b, device = ref_feat.shape[0], ref_feat.device
        ref = self.reference_points.weight[None].expand(b, -1, -1)
        attn_mask, dn = None, None
        if self.training and gt_boxes is not None and self.dn_cfg:
            dn_ref, attn_mask, dn = build_dn_queries(
                gt_boxes, gt_labels, self.num_query, self.dn_cfg['num_groups'], self.pc_range,
                len(self.class_names), self.dn_cfg.get('box_noise_scale', 1.0), self.dn_cfg.get('split', 0.75))
            if dn is not None:
                ref = torch.cat([dn_ref.to(ref.dtype), ref], 1)
        lidar2img = stack_lidar2img(img_metas, device) if img_feats is not None else None
        bev = bev_pos = img = img_pos = pad_mask = None
        if bev_feat is not None:
            bev, bev_pos = self._bev_memory(bev_feat)
        if img_feats is not None:
            img, img_pos, pad_mask = self._img_memory(img_feats, lidar2img, img_metas)
        query_pos = self.query_embedding(ref, lidar2img, img_metas)
        if self.content_proj is not None and bev is not None:
            query = self.content_proj(sample_bev(bev, ref[..., :2]))
        else:
            query = torch.zeros_like(query_pos)
        if self.triplane_query is not None and triplane is not None:
            sampled = sample_triplane(triplane, ref.clamp(0, 1), self.triplane_reduce)
            query = query + self.triplane_query(sampled.to(query.dtype))
        memory = self.transformer.memory(bev, img, bev_pos, img_pos, pad_mask)
        attn_bias = None
        if self.aqr is not None:
            bev_shape = None if bev is None else tuple(bev.shape[-2:])
            cam_shape = None if img is None else (img.shape[1], *img.shape[-2:])
            weights = self.aqr(ref, query, query_pos, memory.feat, memory.pos, memory.key_padding_mask,
                               bev_shape, cam_shape, lidar2img, img_metas)
            attn_bias = self.attn_bias_generator(weights, bev_shape, cam_shape)
        feats = self.transformer(query, query_pos, memory, self_attn_mask=attn_mask, attn_bias=attn_bias)
        ref_logit = inverse_sigmoid(ref.clamp(0, 1))
        outs = []
        for head in self.task_heads:
            o = head(feats)                                                   # each [L, B, N, *]
            xy = (ref_logit[None, ..., :2] + o['center']).sigmoid()
            z = (ref_logit[None, ..., 2:3] + o['height']).sigmoid()
            centre = denormalize_points(torch.cat([xy, z], -1), self.pc_range)
            outs.append(dict(cls=o['cls'], codes=torch.cat([centre, o['dim'], o['rot'], o['vel']], -1)))
        return outs, dn

    # ------------------------------------------------------------------ losses
    def _task_targets(self, task_idx: int, labels: Tensor):
        """Global labels -> task-local labels (len(task) = not in this task)."""
        table = self.task_label_maps[task_idx].to(labels.device)
        return table[labels.clamp(max=len(self.class_names))]

    def _loss_single(self, cls: Tensor, codes: Tensor, labels: Tensor, box_targets: Tensor,
                     weights: Tensor, num_pos: Tensor) -> Tuple[Tensor, Tensor]:
        """cls [N, C], codes [N, 10], labels [N] (C = background), box_targets [N, 10]."""
        loss_cls = self.loss_cls(cls, labels, weight=weights, avg_factor=num_pos)
        pos = (labels < cls.shape[1]) & (weights > 0)
        w = self.code_weights[None].expand_as(codes) * pos[:, None].to(codes.dtype)
        loss_bbox = self.loss_bbox(codes, torch.nan_to_num(box_targets), weight=w, avg_factor=num_pos)
        return torch.nan_to_num(loss_cls), torch.nan_to_num(loss_bbox)

    def loss(self, outs, dn, gt_boxes: List[Tensor], gt_labels: List[Tensor],
             bev_feat: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Set-prediction losses of every layer (+ `loss_heatmap` given the BEV map and an aux head)."""
        losses: Dict[str, Tensor] = {}
        if self.aux_heatmap is not None and bev_feat is not None:
            losses['loss_heatmap'] = self.aux_heatmap.loss(bev_feat, gt_boxes, gt_labels)
        pad = dn.pad_size if dn is not None else 0
        num_layers = outs[0]['cls'].shape[0]
        for t, out in enumerate(outs):
            task_gt_labels = [self._task_targets(t, lab.long()) for lab in gt_labels]
            for layer in range(num_layers):
                cls_all, codes_all, lab_all, tgt_all, w_all = [], [], [], [], []
                for b in range(len(gt_boxes)):
                    cls, codes = out['cls'][layer, b, pad:], out['codes'][layer, b, pad:]
                    keep = task_gt_labels[b] < len(self.tasks[t])
                    g_lab, g_codes = task_gt_labels[b][keep], encode_boxes(gt_boxes[b][keep].to(codes.dtype))
                    assigned, _ = self.assigner.assign(cls.detach(), codes.detach(), g_lab, g_codes)
                    labels = torch.full_like(assigned, len(self.tasks[t]))
                    targets = torch.zeros_like(codes)
                    hit = assigned >= 0
                    labels[hit] = g_lab[assigned[hit]]
                    targets[hit] = g_codes[assigned[hit]]
                    cls_all.append(cls), codes_all.append(codes), lab_all.append(labels)
                    tgt_all.append(targets), w_all.append(torch.ones_like(labels, dtype=codes.dtype))
                    if dn is not None:
                        d_lab = self._task_targets(t, dn.labels[b])
                        cls_all.append(out['cls'][layer, b, :pad]), codes_all.append(out['codes'][layer, b, :pad])
                        lab_all.append(d_lab), tgt_all.append(encode_boxes(dn.box_targets[b].to(codes.dtype)))
                        w_all.append(dn.valid[b].to(codes.dtype))
                labels = torch.cat(lab_all)
                num_pos = reduce_mean(((labels < len(self.tasks[t])) & (torch.cat(w_all) > 0)).sum()
                                      .to(codes_all[0].dtype)).clamp(min=1.0)
                l_cls, l_box = self._loss_single(torch.cat(cls_all), torch.cat(codes_all), labels,
                                                 torch.cat(tgt_all), torch.cat(w_all), num_pos)
                prefix = '' if layer == num_layers - 1 else f'd{layer}.'
                losses[f'{prefix}loss_cls'] = losses.get(f'{prefix}loss_cls', 0) + l_cls
                losses[f'{prefix}loss_bbox'] = losses.get(f'{prefix}loss_bbox', 0) + l_box
        return losses

    # ------------------------------------------------------------------ inference
    def predict_by_feat(self, outs, img_metas) -> List[InstanceData]:
        results = []
        for b in range(len(img_metas)):
            boxes, scores, labels = [], [], []
            for t, out in enumerate(outs):
                dec = self.bbox_coder.decode_single(out['cls'][-1, b], out['codes'][-1, b])
                glob = torch.as_tensor([self.class_names.index(n) for n in self.tasks[t]],
                                       device=dec['labels'].device)
                boxes.append(dec['bboxes']), scores.append(dec['scores']), labels.append(glob[dec['labels']])
            boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
            top = scores.topk(min(self.bbox_coder.max_num, len(scores))).indices
            res = InstanceData()
            res.bboxes_3d = LiDARInstance3DBoxes(boxes[top].float(), box_dim=9)
            res.scores_3d, res.labels_3d = scores[top].float(), labels[top]
            results.append(res)
        return results
