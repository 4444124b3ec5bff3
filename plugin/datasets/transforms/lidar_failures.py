"""Test-time LiDAR failures: sensor drop, fewer beams, limited field of view.

The scenarios of the multi-modal robustness benchmarks that MoME (Park et al., CVPR 2025)
reports on nuScenes (after Yu et al., "Benchmarking the Robustness of LiDAR-Camera Fusion
for 3D Object Detection", 2022): LiDAR drop, 4-beam LiDAR and a limited LiDAR field of
view. Each transform works on `results['points']` wherever it sits in a test pipeline
(`tools/robustness_eval.py` puts them right before `Pack3DDetInputs`); geometry that the
augmentations changed (`GlobalRotScaleTrans`, flips) is undone through the recorded
`lidar_aug_matrix`, so they are also usable in training pipelines.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from .compute_lidar2img import lidar_aug_matrix

# nuScenes' Velodyne HDL-32E: 32 beams from -30.67 to +10.67 degrees (the generated data's
# sensor uses the same fan)
HDL32E_ELEVATION_RANGE = (-30.67, 10.67)


def select_points(points, keep: np.ndarray):
    """The rows of `points` (mmdet3d BasePoints or an array) where `keep` is True."""
    if isinstance(points, np.ndarray):
        return points[keep]
    return points[torch.from_numpy(np.ascontiguousarray(keep))]


def original_xyz(results: dict) -> np.ndarray:
    """Point coordinates [N, 3] in the LiDAR frame as recorded, before any augmentation."""
    points = results['points']
    xyz = points[:, :3] if isinstance(points, np.ndarray) else points.coord.numpy()
    aug = lidar_aug_matrix(results)
    if np.allclose(aug, np.eye(4)):
        return np.asarray(xyz, dtype=np.float64)
    homog = np.concatenate([xyz, np.ones((len(xyz), 1))], axis=1)
    return (homog @ np.linalg.inv(aug).T)[:, :3]


@TRANSFORMS.register_module()
class LiDARDrop(BaseTransform):
    """The LiDAR delivers nothing: `points` keeps its type and columns, with zero rows."""

    def transform(self, results: dict) -> dict:
        results['points'] = select_points(results['points'], np.zeros(len(results['points']), dtype=bool))
        results['lidar_dropped'] = True
        return results


@TRANSFORMS.register_module()
class LiDARBeamReduction(BaseTransform):
    """Keeps `num_beams` evenly spaced beams of a `total_beams` spinning LiDAR.

    A point's beam is its ring index when the points carry one (`ring_dim`: the column of
    the .pcd.bin file, 4 for nuScenes, valid only before `LoadPointsFromMultiSweeps`
    overwrites that column with the time lag); otherwise (`ring_dim=None`, the default)
    it is the beam whose elevation is nearest the point's elevation seen from the sensor,
    the fan being `total_beams` beams evenly spread over `elevation_range` degrees. Beams
    0, s, 2s, ... with s = total_beams // num_beams are kept (for 32 -> 4: 0, 8, 16, 24).
    """

    def __init__(self, num_beams: int = 4, total_beams: int = 32, ring_dim: Optional[int] = None,
                 elevation_range: Sequence[float] = HDL32E_ELEVATION_RANGE):
        if not 1 <= num_beams <= total_beams:
            raise ValueError(f'LiDARBeamReduction.num_beams must be in [1, total_beams={total_beams}], '
                             f'got {num_beams}')
        if len(elevation_range) != 2 or not elevation_range[0] < elevation_range[1]:
            raise ValueError(f'LiDARBeamReduction.elevation_range must be (low, high) degrees with low < high, '
                             f'got {elevation_range}')
        self.num_beams, self.total_beams, self.ring_dim = num_beams, total_beams, ring_dim
        self.elevation_range = tuple(float(e) for e in elevation_range)

    def beam_index(self, results: dict) -> np.ndarray:
        points = results['points']
        if self.ring_dim is not None:
            data = points if isinstance(points, np.ndarray) else points.tensor.numpy()
            if data.shape[1] <= self.ring_dim:
                raise ValueError(f'LiDARBeamReduction.ring_dim={self.ring_dim} but the points of sample '
                                 f'{results.get("token", results.get("sample_idx"))} have {data.shape[1]} columns')
            return np.rint(data[:, self.ring_dim]).astype(np.int64)
        xyz = original_xyz(results)
        elev = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
        low, high = self.elevation_range
        beam = np.rint((elev - low) / (high - low) * (self.total_beams - 1))
        return np.clip(beam, 0, self.total_beams - 1).astype(np.int64)

    def transform(self, results: dict) -> dict:
        step = self.total_beams // self.num_beams
        beam = self.beam_index(results)
        keep = (beam % step == 0) & (beam < step * self.num_beams)
        results['points'] = select_points(results['points'], keep)
        return results


@TRANSFORMS.register_module()
class LiDARFieldOfView(BaseTransform):
    """Keeps the points within +-`half_angle` degrees (azimuth) of the vehicle's front.

    The front is the ego x axis expressed in the LiDAR frame, read from the sample's
    `lidar_points.lidar2ego` (nuScenes' LIDAR_TOP is mounted turned by 90 degrees, so the
    front is not the LiDAR's x axis); `front_yaw` (degrees in the LiDAR frame) overrides it.
    """

    def __init__(self, half_angle: float = 60.0, front_yaw: Optional[float] = None):
        if not 0 < half_angle <= 180:
            raise ValueError(f'LiDARFieldOfView.half_angle must be in (0, 180] degrees, got {half_angle}')
        self.half_angle, self.front_yaw = float(half_angle), front_yaw

    def front(self, results: dict) -> float:
        if self.front_yaw is not None:
            return np.radians(self.front_yaw)
        lidar2ego = results.get('lidar_points', {}).get('lidar2ego')
        if lidar2ego is None:
            raise KeyError(f'LiDARFieldOfView needs lidar_points.lidar2ego of sample '
                           f'{results.get("token", results.get("sample_idx"))} (or set front_yaw)')
        forward = np.asarray(lidar2ego, dtype=np.float64)[:3, :3].T @ np.array([1.0, 0.0, 0.0])
        return float(np.arctan2(forward[1], forward[0]))

    def transform(self, results: dict) -> dict:
        xyz = original_xyz(results)
        diff = np.arctan2(xyz[:, 1], xyz[:, 0]) - self.front(results)
        diff = (diff + np.pi) % (2 * np.pi) - np.pi
        results['points'] = select_points(results['points'], np.abs(diff) <= np.radians(self.half_angle))
        return results
