"""nuScenes-like sensor rig of the synthetic data set: LIDAR_TOP and the six cameras.

Mounting positions, yaw angles and focal lengths follow the real nuScenes rig (a 32-beam
LiDAR on the roof, five 70-degree cameras and a wider rear camera), with small fixed
pitch/roll offsets so that no calibration is an exact axis permutation. Intrinsics scale
with the requested image size, so a smaller image keeps the same field of view.
"""
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
from pyquaternion import Quaternion

# Camera frame: x right, y down, z forward. This maps camera axes onto ego axes
# (x forward, y left, z up) for a camera looking straight ahead.
_CAM_TO_EGO_BASE = np.array([[0., 0., 1.], [-1., 0., 0.], [0., -1., 0.]])

# name, (x, y, z) on the ego vehicle (m), yaw (deg), pitch/roll offsets (deg), focal @1600
_CAMERAS = (
    ('CAM_FRONT', (1.70, 0.02, 1.51), 0.0, (0.3, -0.2), 1266.0),
    ('CAM_FRONT_RIGHT', (1.55, -0.49, 1.50), -55.0, (-0.4, 0.3), 1260.0),
    ('CAM_FRONT_LEFT', (1.52, 0.49, 1.51), 55.0, (0.5, -0.3), 1272.0),
    ('CAM_BACK', (0.03, 0.00, 1.57), 180.0, (-0.2, 0.2), 809.0),
    ('CAM_BACK_LEFT', (1.04, 0.48, 1.49), 110.0, (0.4, 0.4), 1256.0),
    ('CAM_BACK_RIGHT', (1.05, -0.48, 1.49), -110.0, (-0.3, -0.4), 1259.0),
)
CAMERA_NAMES = tuple(c[0] for c in _CAMERAS)
# nuScenes' LIDAR_TOP frame is rotated by -90 deg about z w.r.t. the ego frame
# (x right, y forward), which our rig reproduces.
_LIDAR_TRANSLATION = (0.94, 0.0, 1.84)
_LIDAR_YAW_DEG = -90.0

# HDL-32E: 32 beams from -30.67 to +10.67 degrees.
LIDAR_BEAM_ELEVATIONS_DEG = np.linspace(-30.67, 10.67, 32)


@dataclass
class Sensor:
    channel: str
    modality: str                 # 'lidar' or 'camera'
    translation: np.ndarray       # sensor -> ego
    rotation: Quaternion          # sensor -> ego
    intrinsic: np.ndarray = None  # 3x3 for cameras
    width: int = 0
    height: int = 0

    @property
    def sensor2ego(self) -> np.ndarray:
        mat = np.eye(4)
        mat[:3, :3] = self.rotation.rotation_matrix
        mat[:3, 3] = self.translation
        return mat


def _rot(axis: str, deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    if axis == 'x':
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == 'y':
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def build_rig(image_size: Tuple[int, int] = (1600, 900)) -> List[Sensor]:
    """LIDAR_TOP followed by the six cameras for images of (width, height) pixels."""
    width, height = image_size
    scale = width / 1600.0
    sensors = [Sensor('LIDAR_TOP', 'lidar', np.array(_LIDAR_TRANSLATION),
                      Quaternion(matrix=_rot('z', _LIDAR_YAW_DEG)))]
    for name, xyz, yaw, (pitch, roll), focal in _CAMERAS:
        # yaw about ego z, then small pitch (about ego y) and roll (about the optical axis)
        rot = _rot('z', yaw) @ _rot('y', pitch) @ _CAM_TO_EGO_BASE @ _rot('z', roll)
        intrinsic = np.array([[focal * scale, 0., width / 2 + 8.0 * scale],
                              [0., focal * scale, height / 2 + 4.0 * scale],
                              [0., 0., 1.]])
        sensors.append(Sensor(name, 'camera', np.array(xyz, dtype=np.float64),
                              Quaternion(matrix=rot), intrinsic, width, height))
    return sensors
