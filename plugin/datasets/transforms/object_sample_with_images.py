"""GT-paste of LiDAR objects together with their camera image patches.

Official CMT (Yan et al., ICCV 2023, github.com/junjie18/CMT) trains with
`UnifiedObjectSample(sample_2d=True, mixup_rate=0.5)`: objects drawn from the GT database
are pasted into the point cloud (as mmdet3d's `ObjectSample` does) and their image patches
into every camera view in which they project, so that both modalities see the same scene.
This is mmdet3d 1.4's `ObjectSample` (points, boxes, labels, its `disabled` flag that
`DisableObjectSampleHook` sets) plus that image step, per view:

1. every box (the sample's own and the pasted ones) is projected with the view's current
   lidar2img: boxes with all 8 corners in front of the camera, their corners' pixel
   bounding box truncated to int, clipped to the image and kept if wider and higher than
   1 pixel;
2. far to near (mean corner depth), a pasted object's patch is resized to its box and
   blended in, `img = img * (1 - mixup_rate) + patch * mixup_rate`, and an own object's
   original pixels are blended back in the same way, so that a nearer own object stays in
   front of a pasted one behind it (the official occlusion handling).

Where the patches come from: mmdet3d 1.4's GT database (`tools/create_data.py`) stores no
image crops, only `image_idx` = the `sample_idx` of the sample an object was cut from.
Official CMT's database held one crop per object (`image_path`). Here the patch for view
v is cut from the same camera of that source sample, at the box's projection there (the
database box is in the source sample's LiDAR frame, where it is pasted unchanged): the
source images and calibration come from the data set's info file (`img_info_path`, the one
the database was made from), read once and kept as a compact index by `sample_idx`. An
object that the same camera of its source sample does not see whole (by rule 1) gets no
patch in that view, as an object without a crop gets none in the official code.
Not ported: the official `modify_points` option (dropping LiDAR points hidden by pasted
patches; off in CMT's configs).
"""
import os.path as osp
from typing import Dict, List, Optional, Tuple

import cv2
import mmcv
import numpy as np
from mmdet3d.datasets.transforms import ObjectSample
from mmdet3d.registry import TRANSFORMS
from mmdet3d.structures import LiDARInstance3DBoxes
from mmengine.fileio import get, load

from ...compat import restore_numpy_long
from .compute_lidar2img import camera_projection, lidar2img_matrices
from .recording_database_sampler import RecordingDataBaseSampler


def project_boxes(corners: np.ndarray, lidar2img: np.ndarray, img_hw: Tuple[int, int]):
    """Pixel boxes of 3D boxes in one view (official CMT rule).

    Args:
        corners: [N, 8, 3] box corners in the LiDAR frame of `lidar2img`.
        lidar2img: 4x4 LiDAR -> pixel (projective) matrix.
        img_hw: (height, width) of the view.

    Returns:
        valid [N] bool, boxes [N, 4] int (x0, y0, x1, y1; the patch is [y0:y1, x0:x1]),
        depth [N] (mean corner depth).
    """
    hom = np.concatenate([corners, np.ones(corners.shape[:2] + (1,))], -1) @ np.asarray(lidar2img).T
    depth = hom[..., 2]
    valid = (depth > 0).all(-1)
    with np.errstate(divide='ignore', invalid='ignore'):
        uv = hom[..., :2] / depth[..., None]
    uv = np.where(valid[:, None, None], uv, 0.0)
    boxes = np.concatenate([uv.min(1), uv.max(1)], -1).astype(int)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, img_hw[1] - 1)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, img_hw[0] - 1)
    valid &= ((boxes[:, 2:] - boxes[:, :2]) > 1).all(-1)
    return valid, boxes, depth.mean(1)


@TRANSFORMS.register_module()
class ObjectSampleWithImages(ObjectSample):
    """Args:
        db_sampler: the GT database sampler config (mmdet3d's `DataBaseSampler` arguments);
            its type defaults to (and must be) `RecordingDataBaseSampler`. Its `data_root`
            also prefixes the image paths.
        img_info_path: the info file the database was made from (e.g.
            'data/nuscenes/nuscenes_infos_train.pkl'): source images and calibration.
        img_prefix: the data set's `data_prefix` (per-camera folders, or 'img').
        mixup_rate: weight of a pasted patch (and of an own object's pixels put back);
            CMT: 0.5; 1.0 pastes without blending.
        depth_order: paste far to near (CMT); False: in box order.
        backend_args: file backend of the images.
    """

    def __init__(self, db_sampler: dict, img_info_path: str, img_prefix: Optional[dict] = None,
                 mixup_rate: float = 0.5, depth_order: bool = True, backend_args: Optional[dict] = None):
        if not 0 < mixup_rate <= 1:
            raise ValueError(f'ObjectSampleWithImages.mixup_rate must be in (0, 1], got {mixup_rate}')
        restore_numpy_long()   # mmdet3d's ObjectSample still uses np.long
        db_sampler = dict(db_sampler)
        db_sampler.setdefault('type', 'RecordingDataBaseSampler')
        super().__init__(db_sampler, sample_2d=False)
        if not isinstance(self.db_sampler, RecordingDataBaseSampler):
            raise TypeError(f'ObjectSampleWithImages.db_sampler.type must be RecordingDataBaseSampler (it reports '
                            f'where its objects come from), got {db_sampler["type"]}')
        self.img_info_path, self.img_prefix = img_info_path, dict(img_prefix or {})
        self.mixup_rate, self.depth_order, self.backend_args = mixup_rate, depth_order, backend_args
        self.sources = self._index_sources(img_info_path)

    def _index_sources(self, info_path: str) -> Dict[int, Dict[str, Tuple[str, np.ndarray]]]:
        """sample_idx -> camera -> (image path, 4x4 lidar2img) of every sample in the info file."""
        infos = load(info_path, backend_args=self.backend_args)
        if not isinstance(infos, dict) or 'data_list' not in infos:
            raise ValueError(f'ObjectSampleWithImages.img_info_path {info_path} is not an mmdet3d 1.x info file '
                             f'(no "data_list")')
        root = self.db_sampler.data_root or ''
        sources = {}
        for info in infos['data_list']:
            views = {}
            for cam, item in info.get('images', {}).items():
                if 'img_path' not in item:
                    continue
                prefix = self.img_prefix.get(cam, self.img_prefix.get('img', ''))
                views[cam] = (osp.join(root, prefix, item['img_path']),
                              camera_projection(item['cam2img'], item['lidar2cam']).astype(np.float32))
            sources[info['sample_idx']] = views
        return sources

    def transform(self, input_dict: dict) -> dict:
        if self.disabled:
            return input_dict
        for key in ('img', 'images'):
            if key not in input_dict:
                raise KeyError(f'ObjectSampleWithImages needs results["{key}"] (camera views and their names): '
                               f'put it after LoadMultiViewImageFromFiles, on a data set with use_camera=True')
        num_own = len(input_dict['gt_bboxes_3d'])
        input_dict = super().transform(input_dict)
        if len(input_dict['gt_bboxes_3d']) > num_own:
            self._paste_patches(input_dict, num_own, self.db_sampler.last_drawn)
        return input_dict

    def _source_patch(self, entry: dict, cam: str, cache: dict) -> Optional[np.ndarray]:
        """The object's pixels in camera `cam` of the sample it was cut from, or None."""
        idx = entry['image_idx']
        if idx not in self.sources:
            raise KeyError(f'GT database entry of a {entry.get("name")} has image_idx {idx}, a sample_idx that '
                           f'{self.img_info_path} does not hold: the database and img_info_path do not match')
        if cam not in self.sources[idx]:
            return None
        path, lidar2img = self.sources[idx][cam]
        if path not in cache:
            cache[path] = mmcv.imfrombytes(get(path, backend_args=self.backend_args), flag='unchanged')
        img = cache[path]
        box = np.asarray(entry['box3d_lidar'], dtype=np.float32)[None]
        corners = LiDARInstance3DBoxes(box, box_dim=box.shape[1]).corners.numpy()
        valid, boxes, _ = project_boxes(corners, lidar2img, img.shape[:2])
        if not valid[0]:
            return None
        x0, y0, x1, y1 = boxes[0]
        return img[y0:y1, x0:x1]

    def _paste_patches(self, results: dict, num_own: int, drawn: List[dict]) -> None:
        imgs, cams = results['img'], list(results['images'])
        if len(cams) != len(imgs):
            raise ValueError(f'ObjectSampleWithImages: {len(imgs)} views in results["img"] but {len(cams)} cameras '
                             f'in results["images"] (sample {results.get("sample_idx")})')
        if len(drawn) != len(results['gt_bboxes_3d']) - num_own:
            raise RuntimeError('ObjectSampleWithImages: the sampler reported a different number of objects '
                               'than it returned')
        corners = results['gt_bboxes_3d'].corners.numpy()
        lidar2img = lidar2img_matrices(results)
        rate, cache, out = self.mixup_rate, {}, []
        for v, img in enumerate(imgs):
            valid, boxes, depth = project_boxes(corners, lidar2img[v], img.shape[:2])
            order = np.flatnonzero(valid)
            if self.depth_order:
                order = order[np.argsort(-depth[order], kind='stable')]
            original, img = img, img.copy()
            for i in order:
                x0, y0, x1, y1 = boxes[i]
                if i < num_own:
                    patch = original[y0:y1, x0:x1]
                else:
                    patch = self._source_patch(drawn[i - num_own], cams[v], cache)
                    if patch is None:
                        continue
                    patch = cv2.resize(patch, (int(x1 - x0), int(y1 - y0)))
                region = img[y0:y1, x0:x1]
                region[...] = region * (1 - rate) + patch.reshape(region.shape) * rate
            out.append(img)
        results['img'] = out
