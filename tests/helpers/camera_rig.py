"""A hand-built rig of horizontal pinhole cameras and the image metas it gives."""
import math

import numpy as np


IMG_H, IMG_W, STRIDE = 64, 96, 8
BEV_C, IMG_C = 16, 12


def rig(yaws=(0.0, 90.0, 180.0), centre=(1.0, 0.5, 1.5)):
    """lidar2img [V, 4, 4] of horizontal pinhole cameras at `centre`, looking along `yaws`
    (degrees from +x): camera x right, y down, z forward."""
    mats = []
    for yaw in yaws:
        t = math.radians(yaw)
        fwd, right = np.array([math.cos(t), math.sin(t), 0.0]), np.array([math.sin(t), -math.cos(t), 0.0])
        rot = np.stack([right, [0.0, 0.0, -1.0], fwd])
        lidar2cam = np.eye(4)
        lidar2cam[:3, :3], lidar2cam[:3, 3] = rot, -rot @ np.asarray(centre)
        k = np.eye(4)
        k[0, 0] = k[1, 1] = 40.0
        k[0, 2], k[1, 2] = IMG_W / 2, IMG_H / 2
        mats.append(k @ lidar2cam)
    return np.stack(mats)


def metas(batch=2, yaws=(0.0, 90.0, 180.0)):
    return [dict(lidar2img=rig(yaws), img_shape=(IMG_H, IMG_W), input_shape=(IMG_H, IMG_W))
            for _ in range(batch)]


def geometry(batch=2, yaws=(0.0, 90.0, 180.0)):
    """The `CameraGeometry` of `metas(batch, yaws)`, as the detector hands it to its modules."""
    from plugin.models.utils.camera_geometry import CameraGeometry
    return CameraGeometry.from_metas(metas(batch, yaws))
