"""CMT detector (Cross Modal Transformer, Yan et al., ICCV 2023) on mmdet3d 1.x.

LiDAR: voxelisation (the data preprocessor) -> voxel encoder -> middle encoder -> backbone
-> neck = one BEV map. Cameras: [B, V, 3, H, W] -> backbone -> neck = one stride-s map per
view. An optional `fusion_neck` (FuTr or SparseBEV) may then rewrite the BEV map given the image
maps and the calibration: `bev = fusion_neck(bev, img_feats, geometry)`; a list of necks
is applied in its order (e.g. SparseBEV's local sampling, then FuTr's camera FiLM). An optional
`triplane` neck then builds three feature planes from both and fuses the XY
plane into the BEV map: `bev, planes = triplane(bev, img_feats, geometry)`; the head
samples the planes at its queries' reference points (`pts_bbox_head.triplane_cfg`). The
head decodes both. An optional `img_centre_head` (`ImageCentreHead`) adds dense losses on
the camera maps (projected box centres, offsets, depths); its outputs go to the head, whose
query generator may place queries at its peaks (`CameraPeakQueries`). Either modality may
be left out of the config (LiDAR-only / camera-only). The batch's `CameraGeometry` (lidar2img,
image and input shapes) is built once from the metas and handed to every module that
reads the image maps.

`fp32_modules` names parts (of pts_voxel_encoder, pts_middle_encoder, pts_bbox_head) that run
in float32 under mixed precision, as official CMT runs its voxel encoder, sparse encoder and
head (their inputs are cast to float32 and autocast is off inside them); the head's loss,
with its Hungarian matching, runs in float32 with it.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from mmdet3d.models.detectors import MVXTwoStageDetector
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample

from ..utils.camera_geometry import CameraGeometry


@MODELS.register_module()
class CmtDetector(MVXTwoStageDetector):

    FP32_CAPABLE = ('pts_voxel_encoder', 'pts_middle_encoder', 'pts_bbox_head')

    def __init__(self, fusion_neck: Union[dict, Sequence[dict], None] = None, triplane: Optional[dict] = None,
                 img_centre_head: Optional[dict] = None, fp32_modules: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        self.img_centre_head = MODELS.build(img_centre_head) if img_centre_head else None
        if self.img_centre_head is not None and not self.with_img_backbone:
            raise ValueError('model.img_centre_head supervises the camera feature maps, but model.img_backbone '
                             'is not set')
        unknown = set(fp32_modules) - set(self.FP32_CAPABLE)
        if unknown:
            raise ValueError(f'model.fp32_modules: {sorted(unknown)} cannot run in fp32 islands; '
                             f'choose from {list(self.FP32_CAPABLE)}')
        self.fp32_modules = tuple(fp32_modules)
        # one neck keeps its checkpoint keys (fusion_neck.*); a list is fusion_neck.0.*, ...
        if isinstance(fusion_neck, (list, tuple)):
            self.fusion_neck = nn.ModuleList([MODELS.build(cfg) for cfg in fusion_neck]) if fusion_neck else None
        else:
            self.fusion_neck = MODELS.build(fusion_neck) if fusion_neck else None
        self.triplane = MODELS.build(triplane) if triplane else None
        head_reads = getattr(self.pts_bbox_head, 'triplane_query', None) is not None
        if head_reads and self.triplane is None:
            raise ValueError('model.pts_bbox_head.triplane_cfg samples triplane features, but model.triplane '
                             'is not set')
        if head_reads and self.pts_bbox_head.triplane_channels != self.triplane.generator.output_channels:
            raise ValueError('model.pts_bbox_head.triplane_cfg.in_channels must equal '
                             f'model.triplane.generator.output_channels ({self.triplane.generator.output_channels})')

    def _run(self, name: str, fn, *args, **kwargs):
        """fn(*args, **kwargs), in float32 with autocast off when `name` is in fp32_modules and
        autocast is on."""
        param = next(self.parameters(), None)   # the model's device: the arguments may hold no top-level tensor
        device = param.device.type if param is not None else 'cpu'
        if name not in self.fp32_modules or not torch.is_autocast_enabled(device):
            return fn(*args, **kwargs)

        def fp32(x):
            if isinstance(x, Tensor) and x.is_floating_point():
                return x.float()
            if isinstance(x, (list, tuple)) and not hasattr(x, '_fields'):
                return type(x)(fp32(v) for v in x)
            return x
        with torch.autocast(device, enabled=False):
            return fn(*[fp32(a) for a in args], **{k: fp32(v) for k, v in kwargs.items()})

    def extract_pts_feat(self, voxel_dict: Dict[str, Tensor], points: Optional[List[Tensor]] = None,
                         img_feats: Optional[List[Tensor]] = None,
                         batch_input_metas: Optional[List[dict]] = None) -> List[Tensor]:
        """mmdet3d's LiDAR branch (same signature) with the batch size taken from the batch, not
        from the last voxel's sample index as mmdet3d 1.4 does: that is one short when the last
        sample's point cloud is empty (a LiDAR failure) and fails on an all-empty batch."""
        if batch_input_metas is None:
            raise ValueError('CmtDetector.extract_pts_feat needs batch_input_metas (the batch size)')
        voxel_features = self._run('pts_voxel_encoder', self.pts_voxel_encoder, voxel_dict['voxels'],
                                   voxel_dict['num_points'], voxel_dict['coors'], img_feats, batch_input_metas)
        x = self._run('pts_middle_encoder', self.pts_middle_encoder, voxel_features, voxel_dict['coors'],
                      len(batch_input_metas))
        x = self.pts_backbone(x)
        if self.with_pts_neck:
            x = self.pts_neck(x)
        return x

    def extract_feat(self, batch_inputs_dict: dict, batch_input_metas: List[dict]
                     ) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor], Optional[CameraGeometry]]:
        """Returns (image maps [B, V, C, h, w], BEV map [B, C, H, W], triplane [B, 3, C, T, T],
        the batch's `CameraGeometry`), each None when the model or the input lacks it."""
        imgs = batch_inputs_dict.get('imgs', None)
        img_feats = geometry = None
        if imgs is not None and self.with_img_backbone:
            b, v = imgs.shape[:2]
            feats = self.extract_img_feat(imgs.flatten(0, 1), batch_input_metas)
            feat = feats[0]
            img_feats = feat.view(b, v, *feat.shape[1:])
            # built once per batch; the feature maps come from the padded image batch
            geometry = CameraGeometry.from_metas(batch_input_metas, input_shape=imgs.shape[-2:], num_views=v,
                                                 device=img_feats.device)
        bev = None
        if batch_inputs_dict.get('voxels') is not None and self.with_pts_backbone:
            bev = self.extract_pts_feat(batch_inputs_dict['voxels'], batch_input_metas=batch_input_metas)[0]
        if self.fusion_neck is not None and bev is not None and img_feats is not None:
            for neck in (self.fusion_neck if isinstance(self.fusion_neck, nn.ModuleList) else [self.fusion_neck]):
                bev = neck(bev, img_feats, geometry)
        planes = None
        if self.triplane is not None and (bev is not None or img_feats is not None):
            bev, planes = self.triplane(bev, img_feats, geometry)
        return img_feats, bev, planes, geometry

    @staticmethod
    def _gt(batch_data_samples: List[Det3DDataSample]):
        boxes, labels = [], []
        for s in batch_data_samples:
            b = s.gt_instances_3d.bboxes_3d
            boxes.append(b.tensor if hasattr(b, 'tensor') else torch.as_tensor(b))
            labels.append(s.gt_instances_3d.labels_3d)
        return boxes, labels

    def image_centres(self, img_feats: Optional[Tensor], geometry: Optional[CameraGeometry],
                      gt: Optional[Tuple[List[Tensor], List[Tensor]]] = None) -> Optional[Dict[str, Tensor]]:
        """The `img_centre_head` outputs (None without that head or without images); with the
        ground truth `gt` (boxes, labels), also its targets under 'targets', computed once for
        its loss and the head's camera queries."""
        if self.img_centre_head is None or img_feats is None:
            return None
        outs = self.img_centre_head(img_feats, geometry)
        if gt is not None:
            outs['targets'] = self.img_centre_head.targets(*gt, geometry, outs['heatmap'].shape[-2:])
        return outs

    def loss(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample],
             **kwargs) -> Dict[str, Tensor]:
        metas = [s.metainfo for s in batch_data_samples]
        img_feats, bev, planes, geometry = self.extract_feat(batch_inputs_dict, metas)
        boxes, labels = self._gt(batch_data_samples)
        centres = self.image_centres(img_feats, geometry, (boxes, labels))
        head = self.pts_bbox_head
        outs, dn = self._run('pts_bbox_head', head, bev, img_feats, boxes, labels, triplane=planes,
                             geometry=geometry, img_centre=centres)
        losses = self._run('pts_bbox_head', head.loss, outs, dn, boxes, labels)
        if centres is not None:
            losses.update(self.img_centre_head.loss(centres, boxes, labels, geometry))
        return losses

    def predict(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample],
                **kwargs) -> List[Det3DDataSample]:
        metas = [s.metainfo for s in batch_data_samples]
        img_feats, bev, planes, geometry = self.extract_feat(batch_inputs_dict, metas)
        outs, _ = self._run('pts_bbox_head', self.pts_bbox_head, bev, img_feats, triplane=planes,
                            geometry=geometry, img_centre=self.image_centres(img_feats, geometry))
        results = self.pts_bbox_head.predict_by_feat(outs, metas)
        return self.add_pred_to_datasample(batch_data_samples, results)
