"""Checks of one sample's inputs, each failing with a message that names the file or key.

Used by `CheckedNuScenesDataset`. Without them a truncated .pcd.bin surfaces as "cannot
reshape array of size 7 into shape (5)" and a NaN in a calibration matrix as NaN losses
hours later; here they fail at once and say which file, sample and camera.
"""
import os
import os.path as osp
from typing import Optional

import numpy as np


class InputError(ValueError):
    """An input file or value of the data set that cannot be used."""


def check_point_file(path: str, load_dim: int, token: str) -> None:
    """The file exists and holds whole float32 records of `load_dim` values (empty is fine:
    a LiDAR that returned nothing)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'sample {token}: point file {path} does not exist')
    size = os.stat(path).st_size
    record = 4 * load_dim
    if size % record:
        raise InputError(f'sample {token}: point file {path} is truncated or not float32 x {load_dim}: '
                         f'{size} bytes is not a multiple of {record} (load_dim={load_dim})')


def check_matrix(value, shape: tuple, what: str, invertible: bool = True) -> np.ndarray:
    """A finite matrix of `shape` (the leading block of a larger one is accepted), optionally
    invertible; `what` names it in the error ('sample T, camera C, cam2img')."""
    try:
        mat = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f'{what}: not a numeric matrix ({err})') from None
    if mat.ndim != 2 or mat.shape[0] < shape[0] or mat.shape[1] < shape[1]:
        raise InputError(f'{what}: expected a {shape[0]}x{shape[1]} matrix, got shape {mat.shape}')
    if not np.all(np.isfinite(mat)):
        raise InputError(f'{what}: contains NaN or inf:\n{mat}')
    if invertible:
        block = mat[:shape[0], :shape[1]]
        # relative test: a calibration in pixels and metres has entries from 1e-3 to 1e3
        if abs(np.linalg.det(block)) <= 1e-9 * max(np.abs(block).max(), 1.0) ** block.shape[0]:
            raise InputError(f'{what}: singular matrix (determinant {np.linalg.det(block):.3g}):\n{block}')
    return mat


def check_rigid(value, what: str) -> np.ndarray:
    """A 4x4 rigid transform: finite, rotation block orthonormal with determinant +1."""
    mat = check_matrix(value, (4, 4), what)
    rot = mat[:3, :3]
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3) or np.linalg.det(rot) < 0:
        raise InputError(f'{what}: the rotation block is not a rotation (R R^T != I or det < 0):\n{rot}')
    return mat


def check_calibration(info: dict, token: str, use_camera: bool) -> None:
    """lidar2ego and, with cameras, every camera's cam2img / lidar2cam of one info entry."""
    lidar2ego = info.get('lidar_points', {}).get('lidar2ego')
    if lidar2ego is not None:
        check_rigid(lidar2ego, f'sample {token}: lidar_points.lidar2ego')
    if not use_camera:
        return
    for cam, cam_info in info.get('images', {}).items():
        if 'cam2img' in cam_info:
            check_matrix(cam_info['cam2img'], (3, 3), f'sample {token}, camera {cam}: cam2img')
        if 'lidar2cam' in cam_info:
            check_rigid(cam_info['lidar2cam'], f'sample {token}, camera {cam}: lidar2cam')


def image_decodes(path: str) -> Optional[str]:
    """None if `path` is a readable image, else why not (checked only after a failure)."""
    import cv2
    if not osp.isfile(path):
        return 'does not exist'
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        return 'is empty'
    if cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8) is None:
        return 'cannot be decoded (corrupt or not an image)'
    return None
