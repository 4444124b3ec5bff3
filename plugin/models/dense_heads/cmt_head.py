"""CMT detection head (Cross Modal Transformer, Yan et al., ICCV 2023), mmdet3d 1.x port.

Queries are learnable 3D reference points (normalised to the point-cloud range). Their
position embedding is the sum of a BEV part (sine of x, y -> MLP) and a camera part (the
ray through the point's projection in each view that sees it, lifted at `depth_num`
depths -> MLP; zero where no camera sees it). The memory is the BEV map (with the BEV
embedding of its cell centres) followed by all image feature pixels (with their ray
embeddings); `CmtTransformer` decodes the queries against it, every layer's output goes
through the task heads (`task_heads.py`), and training adds query denoising (DN),
Hungarian assignment, focal + L1 losses on every layer. Prediction is NMS-free.

`query_content` chooses what the queries start from: 'zeros' (CMT: content is zero, the
queries are their position embeddings only) or 'bev' (the LiDAR BEV feature bilinearly
sampled at each reference point, through a linear layer: the query initialisation of
two-stage / TransFusion-style heads, which converges in far fewer iterations; it needs a
BEV map and falls back to zeros without one).

`aux_heatmap_cfg` (optional) adds a dense CenterPoint-style class-heatmap loss on the BEV
map (`BEVHeatmapAux`, `loss_heatmap`); unless a query generator reads it, it is training
only and inference is unchanged.

Where the queries are: CMT's `learned_queries` learned reference points (the same for
every sample) and, with `query_generator`, that generator's queries first, placed per
sample where a dense head sees objects (`plugin/models/query_generators/`: the BEV
heatmap's peaks as TransFusion, the camera-centre peaks lifted along their rays, or both).
The generator gives reference points and content; the head embeds, decodes and matches
them like any other query. The learned points stay next to them: when one modality
delivers nothing, they still cover the map. With `query_score_prior`, a detection from a
generator's peak query is scored as TransFusion scores it: the decoder's class
probability times the peak's heatmap score, for the peak's class only.

`aqr_cfg` (optional) = dict(router=..., bias=...), AQR's one key: the router
(`AQRWeightGenerator`) gives every query a LiDAR and a camera weight from a LAM-restricted
attention over the memory, and the bias (`AttentionBiasGenerator`) turns them into a
`LocalWindowBias` that every decoder cross-attention adds to its scores, exactly and
without a dense [B, Q, K] tensor.

`triplane_cfg` (optional) = dict(in_channels, reduce='sum'): given the planes of
`TriplaneNeck`, every query's content gets LayerNorm -> Linear of the triplane features
sampled at its reference point (`sample_triplane`). The Linear starts at zero, so the
head starts as it would without the triplane.
"""
import copy
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.layers.transformer import inverse_sigmoid
from mmdet.utils import reduce_mean
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet3d.registry import MODELS, TASK_UTILS
from mmdet3d.structures import LiDARInstance3DBoxes

from ..layers.key_layout import KeyLayout
from ..task_modules.box3d_coding import encode_boxes
from ..utils.bev_sampling import sample_bev
from ..utils.triplane_sampling import sample_triplane
from ..utils.position_embedding import BEVPositionEmbedding, CameraRayEmbedding
from ..utils.camera_geometry import CameraGeometry
from ..utils.grids import cell_centres
from ..utils.projection import denormalize_points, project_points
from .query_denoising import build_dn_queries
from ..query_generators import QueryInputs, QuerySet
from . import task_heads  # noqa: F401  (registers the task heads)


# official CMT's box code order: its regression branches, concatenated as (center 2, height 1,
# dim 3, rot 2, vel 2), are trained against (cx, cy, log dx, log dy, cz, log dz, sin, cos, vx,
# vy), so its "height" branch predicts log dx and dim[1] predicts cz. This index turns that
# concatenation into our code order (cx, cy, cz, log dx, log dy, log dz, sin, cos, vx, vy).
CMT_CODE_ORDER = (0, 1, 4, 2, 3, 5, 6, 7, 8, 9)


@MODELS.register_module()
class CmtHead(BaseModule):
    """See the module docstring. Grid sizes and ranges all come from the config/inputs.

    The defaults are official CMT's (github.com/junjie18/CMT, the fusion configs):
    one 10-class task, per-decoder-layer task heads (`task_head`), a 3x3 conv + BN + ReLU on
    the BEV map (`bev_proj_cfg`), the BEV embedding with embed_dims sine features per axis
    in (y, x) order (`bev_embed_cfg`), uniform depth bins and pixel rays through the pixel
    corners (`depth_bins`, `pixel_offset`), the camera query embedding summed over the views
    that see the point (`cam_embed_reduce`), CMT's box code order (`code_layout`),
    `code_weights` in the loss and in the Hungarian cost, and CMT's loss (`loss_mode`):
    classification averaged over positives + 0.1 x negatives, DN losses as separate terms
    (`dn_loss_cls`, `dn_loss_bbox`) with the box loss on every DN query.

    Args (beyond the obvious):
        tasks: class groups, each with its own classification output (None: one task of all
            classes, as official CMT on nuScenes).
        task_head: dict(type='LayerwiseTaskHead', hidden_dims=64, init_bias=-2.19) (CMT) or
            dict(type='SeparateTaskHead'), see `task_heads.py`.
        bev_proj_cfg: the BEV input layer, a `ConvModule` (kernel_size, norm_cfg, act_cfg); None:
            a plain 1x1 convolution (a linear projection).
        code_layout: 'cmt' (see CMT_CODE_ORDER; official checkpoints need it) or 'aligned'
            (the height branch predicts cz and dim the log sizes).
        loss_mode: 'cmt' or 'merged' (DN queries in the same focal / L1 terms as the matched
            queries, all averaged over the positives).
        query_generator: a registered query generator (e.g. dict(type='BEVHeatmapQueries'));
            the head fills in num_classes, embed_dims, pc_range and num_query (num_query -
            learned_queries) unless set. None: learned reference points only (CMT).
        learned_queries: how many of the num_query queries are learned reference points
            (default: all without a generator, none with one).
        query_score_prior: at inference, multiply the class probabilities of the queries at a
            generator's peaks by the peak's heatmap score for its class and zero the other
            classes (TransFusion's rescoring); learned queries keep theirs.
        dn_cfg: num_groups (CMT: at most 10 and at most num_query // max GT, with
            cap_groups=True), box_noise_scale, split.
    """

    def __init__(self,
                 class_names: Sequence[str],
                 pc_range: Sequence[float],
                 tasks: Optional[Sequence[Sequence[str]]] = None,
                 in_channels_bev: Optional[int] = 512,
                 in_channels_img: Optional[int] = 256,
                 embed_dims: int = 256,
                 num_query: int = 900,
                 depth_num: int = 64,
                 common_heads: dict = dict(center=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)),
                 num_cls_layers: int = 2,
                 task_head: dict = dict(type='LayerwiseTaskHead', hidden_dims=64, init_bias=-2.19),
                 bev_proj_cfg: Optional[dict] = dict(kernel_size=3, norm_cfg=dict(type='BN2d'),
                                                     act_cfg=dict(type='ReLU')),
                 bev_embed_cfg: dict = dict(order='yx', frequencies='cmt'),
                 depth_bins: str = 'uniform',
                 pixel_offset: float = 0.0,
                 cam_embed_reduce: str = 'sum',
                 code_layout: str = 'cmt',
                 loss_mode: str = 'cmt',
                 transformer: dict = None,
                 bbox_coder: dict = dict(type='NMSFreeCoder', max_num=300),
                 assigner: dict = dict(type='HungarianAssigner3D'),
                 loss_cls: dict = dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                       loss_weight=2.0),
                 loss_bbox: dict = dict(type='mmdet.L1Loss', loss_weight=0.25),
                 code_weights: Sequence[float] = (2., 2., 1., 1., 1., 1., 1., 1., 0.2, 0.2),
                 dn_cfg: Optional[dict] = dict(num_groups=10, box_noise_scale=1.0, split=0.75, cap_groups=True),
                 aqr_cfg: Optional[dict] = None,
                 query_content: str = 'zeros',
                 aux_heatmap_cfg: Optional[dict] = None,
                 query_generator: Optional[dict] = None,
                 learned_queries: Optional[int] = None,
                 query_score_prior: bool = False,
                 triplane_cfg: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.class_names = list(class_names)
        self.tasks = [list(t) for t in tasks] if tasks is not None else [list(self.class_names)]
        unknown = {c for t in self.tasks for c in t} - set(self.class_names)
        if unknown:
            raise ValueError(f'pts_bbox_head.tasks names classes {sorted(unknown)} that are not in '
                             f'class_names {self.class_names}')
        for key, value, allowed in (('cam_embed_reduce', cam_embed_reduce, ('sum', 'mean')),
                                    ('code_layout', code_layout, ('cmt', 'aligned')),
                                    ('loss_mode', loss_mode, ('cmt', 'merged'))):
            if value not in allowed:
                raise ValueError(f'pts_bbox_head.{key} must be one of {allowed}, got {value!r}')
        if len(code_weights) != 10:
            raise ValueError(f'pts_bbox_head.code_weights needs 10 values, got {len(code_weights)}')
        self.pc_range = list(pc_range)
        self.embed_dims, self.num_query = embed_dims, num_query
        self.dn_cfg = dn_cfg
        self.pixel_offset, self.cam_embed_reduce = float(pixel_offset), cam_embed_reduce
        self.code_layout, self.loss_mode = code_layout, loss_mode
        self.train_cfg, self.test_cfg = train_cfg, test_cfg
        if learned_queries is None:
            learned_queries = 0 if query_generator is not None else num_query
        if not 0 <= learned_queries <= num_query or (query_generator is None and learned_queries != num_query):
            raise ValueError(f'pts_bbox_head.learned_queries must be in [0, num_query={num_query}] and, without '
                             f'a query_generator, equal num_query; got {learned_queries}')
        self.learned_queries = int(learned_queries)
        # CMT's own reference points, built first as in CMT (a generator is built after the parts it reads)
        self.reference_points = nn.Embedding(self.learned_queries, 3) if self.learned_queries else None
        self.bev_proj = None
        if in_channels_bev and bev_proj_cfg is None:
            self.bev_proj = nn.Conv2d(in_channels_bev, embed_dims, 1)
        elif in_channels_bev:
            proj = dict(bev_proj_cfg)
            k = proj.pop('kernel_size', 1)
            self.bev_proj = ConvModule(in_channels_bev, embed_dims, k, padding=k // 2, **proj)
        self.img_proj = nn.Conv2d(in_channels_img, embed_dims, 1) \
            if in_channels_img and in_channels_img != embed_dims else nn.Identity()
        self.bev_embedding = BEVPositionEmbedding(embed_dims, **bev_embed_cfg)
        self.rv_embedding = CameraRayEmbedding(embed_dims, pc_range, depth_num=depth_num, bins=depth_bins)
        self.transformer = MODELS.build(transformer)
        self.task_heads = nn.ModuleList()
        for task in self.tasks:
            heads = copy.deepcopy(dict(common_heads))
            heads['cls'] = (len(task), num_cls_layers)
            self.task_heads.append(MODELS.build(dict(task_head, embed_dims=embed_dims, heads=heads,
                                                     num_layers=len(self.transformer.decoder.layers))))
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        assigner = dict(assigner)
        assigner.setdefault('code_weights', list(code_weights))   # CMT weighs the matching cost too
        self.assigner = TASK_UTILS.build(assigner)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        # per task: global label (num_classes = background) -> task-local label
        maps = torch.stack([torch.tensor([task.index(c) if c in task else len(task) for c in self.class_names]
                                         + [len(task)]) for task in self.tasks])
        self.register_buffer('task_label_maps', maps, persistent=False)
        # per task: its classes' global labels, in the task's order
        self.task_classes = [[self.class_names.index(c) for c in task] for task in self.tasks]
        self.register_buffer('code_weights', torch.tensor(code_weights, dtype=torch.float32), persistent=False)
        self.aqr = self.attn_bias_generator = None
        if aqr_cfg is not None:
            unknown = set(aqr_cfg) - {'router', 'bias'}
            if unknown:
                raise ValueError(f'pts_bbox_head.aqr_cfg takes router=dict(...) and bias=dict(...), got '
                                 f'{sorted(unknown)}')
            aqr = dict(type='AQRWeightGenerator', embed_dims=embed_dims, pc_range=self.pc_range)
            aqr.update(aqr_cfg.get('router') or {})
            self.aqr = MODELS.build(aqr)
            bias = dict(type='AttentionBiasGenerator', pc_range=self.pc_range)
            bias.update(aqr_cfg.get('bias') or {})
            self.attn_bias_generator = MODELS.build(bias)
            drops = {getattr(m, 'attn_drop', 0.0) for name, m in self.transformer.named_modules()
                     if name.endswith('cross_attn')}
            if any(d > 0 for d in drops):   # the exact bias routes have no attention dropout
                raise ValueError(f'AQR (pts_bbox_head.aqr_cfg) needs cross-attention attn_drop=0, got {sorted(drops)}: '
                                 'set model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_cfg.attn_drop=0 '
                                 '(official CMT has no attention dropout there, only proj_drop)')
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
        self.query_score_prior = bool(query_score_prior)
        if self.query_score_prior and query_generator is None:
            raise ValueError('pts_bbox_head.query_score_prior rescores the queries of a query_generator; '
                             'none is set')
        self.query_generator = None
        if query_generator is not None:
            gen = dict(num_classes=len(self.class_names), embed_dims=embed_dims, pc_range=self.pc_range,
                       num_query=num_query - self.learned_queries)
            gen.update(query_generator)
            self.query_generator = MODELS.build(gen)
            if self.query_generator.num_query + self.learned_queries != num_query:
                raise ValueError(f'pts_bbox_head: the query generator gives {self.query_generator.num_query} '
                                 f'queries and learned_queries={self.learned_queries}, but num_query={num_query}')
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
        if self.reference_points is not None:
            nn.init.uniform_(self.reference_points.weight, 0, 1)
        for head in self.task_heads:
            head.init_weights()
        if self.triplane_query is not None:
            nn.init.zeros_(self.triplane_query[-1].weight)
            nn.init.zeros_(self.triplane_query[-1].bias)

    # ------------------------------------------------------------------ embeddings
    def _bev_memory(self, bev_feat: Tensor) -> Tuple[Tensor, Tensor]:
        """Projected BEV map and the embedding of its cell centres ([B, H*W, C])."""
        bev = self.bev_proj(bev_feat)
        b, _, h, w = bev.shape
        # rows are y, columns x (mmdet3d's scatter / sparse encoders lay the canvas out so)
        xy = cell_centres(h, w, bev.device).to(bev.dtype)
        return bev, self.bev_embedding(xy)[None].expand(b, -1, -1)

    def _img_memory(self, img_feats: Tensor, geometry: CameraGeometry) -> Tuple[Tensor, Tensor, Tensor]:
        """Projected image maps, ray embeddings [B, V*h*w, C], padding mask [B, V*h*w]."""
        b, v, c, h, w = img_feats.shape
        img = self.img_proj(img_feats.flatten(0, 1)).view(b, v, -1, h, w)
        pad_h, pad_w = geometry.input_shape
        # CMT's pixel_offset 0: the ray through the cell's corner; 0.5: through its centre
        uv = cell_centres(h, w, img.device, offset=self.pixel_offset, extent=(pad_w, pad_h)).view(1, 1, -1, 2)
        uv = uv.to(img.dtype).expand(b, v, -1, -1)
        pos = KeyLayout.flatten_views(self.rv_embedding(uv, geometry.lidar2img))
        inside = geometry.inside(uv)   # padding is not image
        return img, pos, ~KeyLayout.flatten_views(inside)

    def query_embedding(self, ref: Tensor, geometry: Optional[CameraGeometry]) -> Tensor:
        """BEV part + camera part (summed or averaged over the views that see the point, else zero)."""
        emb = self.bev_embedding(ref[..., :2])
        if geometry is not None:
            pts = denormalize_points(ref, self.pc_range)
            uv, depth = project_points(pts, geometry.lidar2img)
            seen = geometry.visible(uv, depth).to(ref.dtype)                                # [B, V, N]
            cam = self.rv_embedding(uv, geometry.lidar2img)                                 # [B, V, N, C]
            cam = (cam * seen[..., None]).sum(1)
            if self.cam_embed_reduce == 'mean':
                cam = cam / seen.sum(1).clamp(min=1)[..., None]
            emb = emb + cam
        return emb

    def dense_heatmap(self, bev_feat: Optional[Tensor]) -> Optional[Tensor]:
        """Logits [B, C, H, W] of the auxiliary class heatmap on the BEV map (None without
        one). `forward` computes them once per batch: the heatmap queries are selected on
        them and, in training, `loss` takes its heatmap loss on the same tensor."""
        if self.aux_heatmap is None or bev_feat is None:
            return None
        return self.aux_heatmap(bev_feat)

    def initial_queries(self, inputs: QueryInputs) -> QuerySet:
        """The matching queries, the generator's first, then the learned points: reference
        points [B, num_query, 3] (normalised to the point-cloud range) and, from the
        generator, content [B, num_query, C] (zero for the learned points), peak classes and
        scores [B, num_query] (-1 and 1 for the learned points); None where absent."""
        learned = None
        if self.reference_points is not None:
            learned = self.reference_points.weight[None].expand(inputs.batch_size, -1, -1)
        if self.query_generator is None:
            return QuerySet(learned)
        queries = self.query_generator(inputs)
        if learned is None:
            return queries
        n = self.learned_queries
        return QuerySet(torch.cat([queries.ref, learned.to(queries.ref.dtype)], 1),
                        None if queries.content is None else F.pad(queries.content, (0, 0, 0, n)),
                        None if queries.labels is None else F.pad(queries.labels, (0, n), value=-1),
                        None if queries.scores is None else F.pad(queries.scores, (0, n), value=1.0))

    def score_prior(self, queries: QuerySet) -> Optional[Tensor]:
        """[B, num_query, num_classes] factors of the class probabilities (`query_score_prior`):
        a peak query's score at its class and zero elsewhere; one for the other queries."""
        if not self.query_score_prior or queries.labels is None:
            return None
        labels = queries.labels
        onehot = F.one_hot(labels.clamp(min=0), len(self.class_names)).to(queries.scores.dtype)
        prior = onehot * queries.scores[..., None]
        return torch.where((labels >= 0)[..., None], prior, torch.ones_like(prior))

    # ------------------------------------------------------------------ forward
    def forward(self, bev_feat: Optional[Tensor], img_feats: Optional[Tensor],
                gt_boxes: Optional[List[Tensor]] = None, gt_labels: Optional[List[Tensor]] = None,
                triplane: Optional[Tensor] = None, geometry: Optional[CameraGeometry] = None,
                img_centre: Optional[Dict[str, Tensor]] = None):
        """Returns (per-task list of dict(cls [L, B, N, Ct], codes [L, B, N, 10]), dn_meta);
        each dict also holds `dense_heatmap`, the auxiliary heatmap's logits [B, C, H, W], when
        they were computed (in training, or to place heatmap queries), as TransFusion's head
        returns its dense heatmap with its predictions for the loss.
        `triplane` [B, 3, C, T, T]: the planes of `TriplaneNeck` (used with `triplane_cfg`);
        `geometry`: the batch's `CameraGeometry` (needed with image features);
        `img_centre`: the outputs of the detector's `ImageCentreHead` (for camera queries)."""
        b = (bev_feat if bev_feat is not None else img_feats).shape[0]
        heatmap = self.dense_heatmap(bev_feat) if self.training or self.query_generator is not None else None
        geometry = None if img_feats is None else CameraGeometry.required(geometry, img_feats.shape[1], 'CmtHead')
        queries = self.initial_queries(QueryInputs(b, heatmap, img_feats, img_centre, geometry, gt_boxes))
        ref, gen_content = queries.ref, queries.content
        prior = None if self.training else self.score_prior(queries)
        attn_mask, dn = None, None
        if self.training and gt_boxes is not None and self.dn_cfg:
            groups = self.dn_cfg['num_groups']
            max_gt = max((len(g) for g in gt_boxes), default=0)
            if self.dn_cfg.get('cap_groups', True) and max_gt > 0:
                groups = min(groups, self.num_query // max_gt)   # CMT: at most num_query DN queries per group set
            dn_ref, attn_mask, dn = build_dn_queries(
                gt_boxes, gt_labels, self.num_query, groups, self.pc_range,
                len(self.class_names), self.dn_cfg.get('box_noise_scale', 1.0), self.dn_cfg.get('split', 0.75))
            if dn is not None:
                ref = torch.cat([dn_ref.to(ref.dtype), ref], 1)
        bev = bev_pos = img = img_pos = pad_mask = None
        if bev_feat is not None:
            bev, bev_pos = self._bev_memory(bev_feat)
        if img_feats is not None:
            img, img_pos, pad_mask = self._img_memory(img_feats, geometry)
        query_pos = self.query_embedding(ref, geometry)
        if self.content_proj is not None and bev is not None:
            query = self.content_proj(sample_bev(bev, ref[..., :2]))
        else:
            query = torch.zeros_like(query_pos)
        if gen_content is not None:   # the generator's content; DN queries (first) get none
            query = query + F.pad(gen_content.to(query.dtype), (0, 0, query.shape[1] - gen_content.shape[1], 0))
        if self.triplane_query is not None and triplane is not None:
            sampled = sample_triplane(triplane, ref.clamp(0, 1), self.triplane_reduce)
            query = query + self.triplane_query(sampled.to(query.dtype))
        memory = self.transformer.memory(bev, img, bev_pos, img_pos, pad_mask)
        attn_bias = None
        if self.aqr is not None:
            weights = self.aqr(ref, query, query_pos, memory.feat, memory.pos, memory.key_padding_mask,
                               memory.layout, geometry)
            attn_bias = self.attn_bias_generator(weights, memory.layout, geometry)
        feats = self.transformer(query, query_pos, memory, self_attn_mask=attn_mask, attn_bias=attn_bias)
        ref_logit = inverse_sigmoid(ref.clamp(0, 1))
        outs = []
        for head in self.task_heads:
            o = head(feats)                                                   # each [L, B, N, *]
            xy = (ref_logit[None, ..., :2] + o['center']).sigmoid()
            z = (ref_logit[None, ..., 2:3] + o['height']).sigmoid()
            centre = denormalize_points(torch.cat([xy, z], -1), self.pc_range)
            codes = torch.cat([centre, o['dim'], o['rot'], o['vel']], -1)
            if self.code_layout == 'cmt':
                codes = codes[..., list(CMT_CODE_ORDER)]
            out = dict(cls=o['cls'], codes=codes)
            if prior is not None:   # the task's classes, in the task's order
                out['score_prior'] = prior[..., self.task_classes[len(outs)]]
            if heatmap is not None:
                out['dense_heatmap'] = heatmap
            outs.append(out)
        return outs, dn

    # ------------------------------------------------------------------ losses
    def _task_targets(self, task_idx: int, labels: Tensor):
        """Global labels -> task-local labels (len(task) = not in this task)."""
        table = self.task_label_maps[task_idx].to(labels.device)
        return table[labels.clamp(max=len(self.class_names))]

    def _weighted_l1(self, codes: Tensor, targets: Tensor, box_mask: Tensor, avg_factor) -> Tensor:
        """L1 over the codes of the `box_mask` rows, each code weighted by `code_weights`."""
        w = self.code_weights[None].to(codes.dtype).expand_as(codes) * box_mask[:, None].to(codes.dtype)
        return torch.nan_to_num(self.loss_bbox(codes, torch.nan_to_num(targets), weight=w, avg_factor=avg_factor))

    def _match(self, t: int, cls: Tensor, codes: Tensor, gt_boxes: Tensor, task_labels: Tensor):
        """Hungarian assignment of one sample's matching queries: labels [Q] (len(task) =
        background) and box targets [Q, 10] (zero where unassigned)."""
        keep = task_labels < len(self.tasks[t])
        g_lab, g_codes = task_labels[keep], encode_boxes(gt_boxes[keep].to(codes.dtype))
        assigned, _ = self.assigner.assign(cls.detach(), codes.detach(), g_lab, g_codes)
        labels = torch.full_like(assigned, len(self.tasks[t]))
        targets = torch.zeros_like(codes)
        hit = assigned >= 0
        labels[hit] = g_lab[assigned[hit]]
        targets[hit] = g_codes[assigned[hit]]
        return labels, targets

    def _layer_losses_cmt(self, t: int, cls: Tensor, codes: Tensor, dn, dn_codes, gt_boxes, task_labels):
        """Official CMT losses of one task and decoder layer; cls [B, P+Q, C], codes [B, P+Q, 10],
        dn_codes [B, P, 10] the encoded DN targets."""
        pad = dn.pad_size if dn is not None else 0
        num_cls = len(self.tasks[t])
        matched = [self._match(t, cls[b, pad:], codes[b, pad:], gt_boxes[b], task_labels[b])
                   for b in range(len(gt_boxes))]
        labels = torch.cat([m[0] for m in matched])
        targets = torch.cat([m[1] for m in matched])
        pos = labels < num_cls
        num_pos = float(pos.sum())
        # focal loss over positives + 0.1 x negatives (each GPU's own counts, as official)
        cls_avg = max(num_pos + 0.1 * (labels.numel() - num_pos), 1.0)
        flat_cls, flat_codes = cls[:, pad:].flatten(0, 1), codes[:, pad:].flatten(0, 1)
        out = dict(loss_cls=torch.nan_to_num(self.loss_cls(flat_cls, labels, avg_factor=cls_avg)),
                   loss_bbox=self._weighted_l1(flat_codes, targets, pos, max(num_pos, 1.0)))
        if dn is not None:
            valid = dn.valid                                              # [B, P]: real DN queries
            # the box loss covers every DN query of the task's classes, far copies too (as official)
            in_task = valid & (self._task_targets(t, dn.classes) < num_cls)
            d_lab = self._task_targets(t, dn.labels)[valid]
            num_tgt = float(valid.sum())
            split = self.dn_cfg.get('split', 0.75)
            # DN-DETR's normalisation: the expected number of queries inside the split ball
            dn_cls_avg = max(num_tgt * math.pi / 6 * split ** 3, 1.0)
            box_avg = reduce_mean(cls.new_tensor(num_tgt)).clamp(min=1.0)
            d_targets = dn_codes[valid].to(codes.dtype)
            out['dn_loss_cls'] = torch.nan_to_num(self.loss_cls(cls[:, :pad][valid], d_lab, avg_factor=dn_cls_avg))
            out['dn_loss_bbox'] = self._weighted_l1(codes[:, :pad][valid], d_targets, in_task[valid], box_avg)
        return out

    def _layer_losses_merged(self, t: int, cls: Tensor, codes: Tensor, dn, dn_codes, gt_boxes, task_labels):
        """DN queries in the same terms as the matched queries, both averaged over all positives."""
        pad = dn.pad_size if dn is not None else 0
        num_cls = len(self.tasks[t])
        cls_all, codes_all, lab_all, tgt_all, w_all = [], [], [], [], []
        for b in range(len(gt_boxes)):
            labels, targets = self._match(t, cls[b, pad:], codes[b, pad:], gt_boxes[b], task_labels[b])
            cls_all.append(cls[b, pad:]), codes_all.append(codes[b, pad:]), lab_all.append(labels)
            tgt_all.append(targets), w_all.append(torch.ones_like(labels, dtype=codes.dtype))
            if dn is not None:
                cls_all.append(cls[b, :pad]), codes_all.append(codes[b, :pad])
                lab_all.append(self._task_targets(t, dn.labels[b]))
                tgt_all.append(dn_codes[b].to(codes.dtype))
                w_all.append(dn.valid[b].to(codes.dtype))
        labels, weights = torch.cat(lab_all), torch.cat(w_all)
        pos = (labels < num_cls) & (weights > 0)
        num_pos = reduce_mean(pos.sum().to(codes.dtype)).clamp(min=1.0)
        loss_cls = self.loss_cls(torch.cat(cls_all), labels, weight=weights, avg_factor=num_pos)
        return dict(loss_cls=torch.nan_to_num(loss_cls),
                    loss_bbox=self._weighted_l1(torch.cat(codes_all), torch.cat(tgt_all), pos, num_pos))

    def loss(self, outs, dn, gt_boxes: List[Tensor], gt_labels: List[Tensor]) -> Dict[str, Tensor]:
        """Set-prediction losses of every layer (+ `loss_heatmap` on the outputs' `dense_heatmap`,
        there in training given the BEV map and an aux head).

        Keys: loss_cls, loss_bbox (last layer), d{i}.loss_cls, d{i}.loss_bbox (earlier layers)
        and, with loss_mode='cmt' and DN, dn_loss_cls / dn_loss_bbox likewise; summed over tasks."""
        losses: Dict[str, Tensor] = {}
        if 'dense_heatmap' in outs[0]:
            losses['loss_heatmap'] = self.aux_heatmap.loss(outs[0]['dense_heatmap'], gt_boxes, gt_labels)
        layer_losses = self._layer_losses_cmt if self.loss_mode == 'cmt' else self._layer_losses_merged
        dn_codes = None   # the DN targets, encoded once for every task and layer
        if dn is not None:
            dn_codes = encode_boxes(dn.box_targets.flatten(0, 1)).view(*dn.box_targets.shape[:2], -1)
        num_layers = outs[0]['cls'].shape[0]
        for t, out in enumerate(outs):
            task_labels = [self._task_targets(t, lab.long()) for lab in gt_labels]
            for layer in range(num_layers):
                prefix = '' if layer == num_layers - 1 else f'd{layer}.'
                terms = layer_losses(t, out['cls'][layer], out['codes'][layer], dn, dn_codes, gt_boxes, task_labels)
                for name, value in terms.items():
                    losses[prefix + name] = losses.get(prefix + name, 0) + value
        return losses

    # ------------------------------------------------------------------ inference
    def predict_by_feat(self, outs, img_metas) -> List[InstanceData]:
        results = []
        for b in range(len(img_metas)):
            boxes, scores, labels = [], [], []
            for t, out in enumerate(outs):
                prior = out['score_prior'][b] if 'score_prior' in out else None
                dec = self.bbox_coder.decode_single(out['cls'][-1, b], out['codes'][-1, b], prior)
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
