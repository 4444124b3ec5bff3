"""Test-time camera failures: dropped views, occluded images, miscalibrated extrinsics.

The camera scenarios of the multi-modal robustness benchmarks MoME (Park et al., CVPR 2025)
reports on nuScenes (camera view drop, image occlusion), plus calibration noise, the
failure that silently breaks every projection-based fusion. The transforms act on
`results['img']` (a list of per-view arrays) and the per-view calibration, wherever they
sit after image loading; `tools/robustness_eval.py` puts them right before
`Pack3DDetInputs`. With `seed` set (the default), sample X is corrupted the same way in
every run (see `sample_rng`).
"""
from typing import Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from .compute_lidar2img import lidar_aug_matrix
from .sample_rng import choice, integers, sample_rng

Views = Union[str, Sequence[Union[int, str]], None]


def resolve_views(results: dict, views: Views, owner: str) -> np.ndarray:
    """Indices of the views named by `views`: 'all', or indices / camera names (CAM_FRONT...)."""
    num = len(results['img'])
    if views is None or views == 'all':
        return np.arange(num)
    names = list(results.get('images', {}).keys())
    out = []
    for view in views:
        if isinstance(view, str):
            if view not in names:
                raise KeyError(f'{owner}.views: camera {view!r} is not in sample '
                               f'{results.get("token", results.get("sample_idx"))} (cameras {names})')
            out.append(names.index(view))
        elif not 0 <= int(view) < num:
            raise IndexError(f'{owner}.views: view index {view} out of range for {num} views')
        else:
            out.append(int(view))
    return np.array(sorted(set(out)), dtype=np.int64)


def blank_views(results: dict, views: np.ndarray, fill: float = 0.0) -> dict:
    """Replaces the pixels of `views` by `fill` (a camera that delivers a black frame)."""
    imgs = list(results['img'])
    for v in views:
        imgs[v] = np.full_like(imgs[v], fill)
    results['img'] = imgs
    results['dropped_views'] = sorted(set(results.get('dropped_views', [])) | {int(v) for v in views})
    return results


@TRANSFORMS.register_module()
class CameraViewDrop(BaseTransform):
    """Blanks camera views: the listed `views` (indices or names, or 'all'), or
    `num_views` views drawn at random per sample. Calibration is left as it is: a dead
    camera still has its mounting."""

    def __init__(self, views: Views = None, num_views: Optional[int] = None, fill: float = 0.0,
                 seed: Optional[int] = 0):
        if (views is None) == (num_views is None):
            raise ValueError('CameraViewDrop needs exactly one of views (list or "all") and num_views')
        if num_views is not None and num_views < 1:
            raise ValueError(f'CameraViewDrop.num_views must be >= 1, got {num_views}')
        if isinstance(views, str) and views != 'all':
            views = [views]
        self.views, self.num_views, self.fill, self.seed = views, num_views, fill, seed

    def transform(self, results: dict) -> dict:
        if self.num_views is not None:
            num = len(results['img'])
            views = choice(sample_rng(results, self.seed), num, min(self.num_views, num))
        else:
            views = resolve_views(results, self.views, 'CameraViewDrop')
        return blank_views(results, views, self.fill)


@TRANSFORMS.register_module()
class ImageOcclusion(BaseTransform):
    """Pastes `num_patches` (inclusive range) rectangles of `fill` into each chosen view;
    each side is `patch_size` (range, fraction of the image side) long. Records the
    occluded fraction of each view in `occluded_fraction`."""

    def __init__(self, num_patches: Sequence[int] = (1, 3), patch_size: Sequence[float] = (0.1, 0.3),
                 views: Views = 'all', fill: float = 0.0, seed: Optional[int] = 0):
        if not 0 <= num_patches[0] <= num_patches[1]:
            raise ValueError(f'ImageOcclusion.num_patches must be (min, max) with 0 <= min <= max, got {num_patches}')
        if not 0 < patch_size[0] <= patch_size[1] <= 1:
            raise ValueError(f'ImageOcclusion.patch_size must be fractions 0 < min <= max <= 1, got {patch_size}')
        self.num_patches, self.patch_size = tuple(num_patches), tuple(patch_size)
        self.views, self.fill, self.seed = views, fill, seed

    def transform(self, results: dict) -> dict:
        rng = sample_rng(results, self.seed)
        imgs = list(results['img'])
        fractions = np.zeros(len(imgs))
        for v in resolve_views(results, self.views, 'ImageOcclusion'):
            img = imgs[v].copy()
            h, w = img.shape[:2]
            mask = np.zeros((h, w), dtype=bool)
            for _ in range(int(integers(rng, self.num_patches[0], self.num_patches[1] + 1))):
                ph = max(1, int(round(rng.uniform(*self.patch_size) * h)))
                pw = max(1, int(round(rng.uniform(*self.patch_size) * w)))
                y0, x0 = int(integers(rng, 0, h - ph + 1)), int(integers(rng, 0, w - pw + 1))
                mask[y0:y0 + ph, x0:x0 + pw] = True
            img[mask] = self.fill
            imgs[v] = img
            fractions[v] = mask.mean()
        results['img'] = imgs
        results['occluded_fraction'] = fractions
        return results


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation matrix about a unit axis."""
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


@TRANSFORMS.register_module()
class CalibrationNoise(BaseTransform):
    """Miscalibrated cameras: each chosen camera is rotated by exactly `rotation_deg` about a
    random axis and moved by exactly `translation_cm` in a random direction (both in its
    own frame) - the error the model's calibration believes in, while the pixels stay.

    Updates `lidar2cam`, `cam2lidar` (if present) and, if `ComputeLidar2Img` already ran,
    `lidar2img` consistently (the augmentations recorded in `lidar_aug_matrix` and the
    image matrices are kept). Records the applied noise per view in `calib_noise`.
    """

    def __init__(self, rotation_deg: float = 1.0, translation_cm: float = 5.0, views: Views = 'all',
                 seed: Optional[int] = 0):
        if rotation_deg < 0 or translation_cm < 0:
            raise ValueError(f'CalibrationNoise.rotation_deg and translation_cm must be >= 0, '
                             f'got {rotation_deg}, {translation_cm}')
        self.rotation_deg, self.translation_cm = float(rotation_deg), float(translation_cm)
        self.views, self.seed = views, seed

    def _unit(self, rng) -> np.ndarray:
        vec = np.asarray(rng.normal(size=3), dtype=np.float64)   # Generator and np.random alike
        return vec / max(np.linalg.norm(vec), 1e-12)

    def transform(self, results: dict) -> dict:
        if 'lidar2cam' not in results:
            raise KeyError(f'CalibrationNoise needs lidar2cam of sample '
                           f'{results.get("token", results.get("sample_idx"))}: put it after image loading')
        rng = sample_rng(results, self.seed)
        lidar2cam = np.array(results['lidar2cam'], dtype=np.float64)
        new = lidar2cam.copy()
        rot_deg, trans_cm = np.zeros(len(new)), np.zeros(len(new))
        for v in resolve_views(results, self.views, 'CalibrationNoise'):
            noise = np.eye(4)            # the camera's true pose in its believed frame
            noise[:3, :3] = rotation_about(self._unit(rng), np.radians(self.rotation_deg))
            noise[:3, 3] = self._unit(rng) * self.translation_cm / 100.0
            new[v] = np.linalg.inv(noise) @ lidar2cam[v]
            rot_deg[v], trans_cm[v] = self.rotation_deg, self.translation_cm
        if 'lidar2img' in results:
            aug = lidar_aug_matrix(results)
            change = aug @ np.linalg.inv(lidar2cam) @ new @ np.linalg.inv(aug)
            results['lidar2img'] = np.asarray(results['lidar2img'], dtype=np.float64) @ change
        results['lidar2cam'] = new
        if 'cam2lidar' in results:
            results['cam2lidar'] = np.linalg.inv(new)
        results['calib_noise'] = dict(rotation_deg=rot_deg, translation_cm=trans_cm)
        return results
