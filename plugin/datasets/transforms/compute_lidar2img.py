"""Per-view LiDAR -> image projection matrices for multi-view pipelines.

mmdet3d 1.4's `LoadMultiViewImageFromFiles` gives each view's `cam2img` (3x3 or 4x4) and
`lidar2cam` but, unlike its BEVFusion project, no per-view `lidar2img`; the dataset only
fills it for the default camera. This transform stacks `cam2img @ lidar2cam` for every
view into `results['lidar2img']` ([V, 4, 4], float64), as camera-aware heads expect.
"""
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ComputeLidar2Img(BaseTransform):
    """Adds `lidar2img` = cam2img (padded to 4x4) @ lidar2cam for every view."""

    def transform(self, results: dict) -> dict:
        if 'cam2img' not in results or 'lidar2cam' not in results:
            raise KeyError(
                'ComputeLidar2Img needs per-view cam2img and lidar2cam: put it after '
                f'LoadMultiViewImageFromFiles (sample {results.get("sample_idx")}, '
                f'keys {sorted(results)})')
        mats = []
        for cam2img, lidar2cam in zip(results['cam2img'], results['lidar2cam']):
            k = np.eye(4)
            cam2img = np.asarray(cam2img, dtype=np.float64)
            k[:cam2img.shape[0], :cam2img.shape[1]] = cam2img
            mats.append(k @ np.asarray(lidar2cam, dtype=np.float64))
        results['lidar2img'] = np.stack(mats)
        return results
