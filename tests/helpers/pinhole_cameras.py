"""Pinhole cameras by yaw in the LiDAR frame, and their stacked lidar2img."""
import math

import numpy as np
import torch



def pinhole_camera(yaw_deg, t=(0.5, 0.1, 1.6), f=500.0, cx=320.0, cy=180.0):
    """lidar2cam, K for a camera looking along yaw in the LiDAR frame (numpy)."""
    a = math.radians(yaw_deg)
    fwd = np.array([math.cos(a), math.sin(a), 0])
    right = np.array([math.sin(a), -math.cos(a), 0])
    down = np.array([0, 0, -1.])
    r = np.stack([right, down, fwd])                    # rows: camera axes in LiDAR coords
    lidar2cam = np.eye(4)
    lidar2cam[:3, :3] = r
    lidar2cam[:3, 3] = -r @ np.array(t)
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.]])
    return lidar2cam, k


def stack_lidar2img(cams):
    mats = []
    for l2c, k in cams:
        k4 = np.eye(4)
        k4[:3, :3] = k
        mats.append(k4 @ l2c)
    return torch.tensor(np.stack(mats)[None], dtype=torch.float64)
