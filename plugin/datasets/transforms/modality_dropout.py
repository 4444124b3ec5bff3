"""Train-time modality dropout: teach the fusion model to live with one sensor.

MoME (Park et al., CVPR 2025) trains its experts with whole modalities missing so that
the router can fall back on the remaining sensor at test time. Per training sample: with
probability `lidar_prob` the LiDAR delivers no points, else with probability
`camera_prob` every camera is blank; never both (a sample with no sensor teaches
nothing). Ground truth is kept: the other modality must still find the objects.
Uses the global numpy generator (mmengine seeds it per worker).
"""
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from .camera_failures import blank_views
from .lidar_failures import LiDARDrop


@TRANSFORMS.register_module()
class ModalityDropout(BaseTransform):

    def __init__(self, lidar_prob: float = 0.1, camera_prob: float = 0.1):
        if lidar_prob < 0 or camera_prob < 0 or lidar_prob + camera_prob > 1:
            raise ValueError(f'ModalityDropout.lidar_prob and camera_prob must be >= 0 with a sum <= 1, '
                             f'got {lidar_prob}, {camera_prob}')
        self.lidar_prob, self.camera_prob = lidar_prob, camera_prob
        self._drop_lidar = LiDARDrop()

    def transform(self, results: dict) -> dict:
        draw = np.random.rand()
        if draw < self.lidar_prob:
            return self._drop_lidar(results)
        if draw < self.lidar_prob + self.camera_prob:
            return blank_views(results, np.arange(len(results['img'])))
        return results
