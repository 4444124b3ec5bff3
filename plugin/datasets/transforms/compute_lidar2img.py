"""Per-view LiDAR -> image projection matrices that stay right under augmentation.

mmdet3d 1.4's `LoadMultiViewImageFromFiles` gives each view's `cam2img` and `lidar2cam`
but no per-view `lidar2img`. This transform, placed after all augmentations, writes

    lidar2img[v] = img_aug[v] @ cam2img[v] (4x4) @ lidar2cam[v] @ inv(lidar_aug)

* `img_aug` ([V, 4, 4], from `MultiViewImageResizeCrop`) acts on projective pixel
  coordinates (u*d, v*d, d, 1): a pixel shift t therefore sits in column 2 (it scales
  with d), not in column 3. (mmdet3d's BEVFusion-style `img_aug_matrix` puts it in column 3,
  which is only right after the perspective divide: `img_aug @ lidar2img` with it is wrong.)
* `lidar_aug` (4x4) re-creates what mmdet3d's GlobalRotScaleTrans / RandomFlip3D did to
  the points, which they record only as `pcd_rotation` (points @ R), `pcd_scale_factor`,
  `pcd_trans` and the flip flags, in the order of `transformation_3d_flow`.
"""
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS


def lidar_aug_matrix(results: dict) -> np.ndarray:
    """4x4 matrix mapping original LiDAR points to the augmented ones."""
    mat = np.eye(4)
    for step in results.get('transformation_3d_flow', []):
        step_mat = np.eye(4)
        if step == 'R' and 'pcd_rotation' in results:
            step_mat[:3, :3] = np.asarray(results['pcd_rotation'], dtype=np.float64).T  # p' = p @ R
        elif step == 'S' and 'pcd_scale_factor' in results:
            step_mat[:3, :3] *= float(results['pcd_scale_factor'])
        elif step == 'T' and 'pcd_trans' in results:
            step_mat[:3, 3] = np.asarray(results['pcd_trans'], dtype=np.float64)
        elif step == 'HF' and results.get('pcd_horizontal_flip', False):
            step_mat[1, 1] = -1  # mmdet3d flips LiDAR y for a horizontal (BEV) flip
        elif step == 'VF' and results.get('pcd_vertical_flip', False):
            step_mat[0, 0] = -1
        mat = step_mat @ mat
    return mat


def camera_projection(cam2img, lidar2cam) -> np.ndarray:
    """4x4 (float64) LiDAR -> pixel matrix of one camera: cam2img (3x3, 3x4 or 4x4, padded
    to 4x4) @ lidar2cam."""
    k = np.eye(4)
    cam2img = np.asarray(cam2img, dtype=np.float64)
    k[:cam2img.shape[0], :cam2img.shape[1]] = cam2img
    return k @ np.asarray(lidar2cam, dtype=np.float64)


def lidar2img_matrices(results: dict) -> np.ndarray:
    """[V, 4, 4] (float64) LiDAR -> pixel matrices of the views as they are now: maps points of
    the (augmented) LiDAR frame to the (resized / cropped / flipped) images."""
    if 'cam2img' not in results or 'lidar2cam' not in results:
        raise KeyError(
            'ComputeLidar2Img needs per-view cam2img and lidar2cam: put it after '
            f'LoadMultiViewImageFromFiles (sample {results.get("sample_idx")}, '
            f'keys {sorted(results)})')
    if results.get('flip', False):
        # mmdet3d's RandomFlip3D 2D-flips `img` as one array (for a list of views that
        # is a flip along the wrong axis) and records no matrix
        raise ValueError(
            f'sample {results.get("sample_idx")}: images were flipped by a 2D flip that '
            'lidar2img cannot follow; flip the LiDAR with LiDARRandomFlip3D and the images with '
            'MultiViewImageResizeCrop(flip_prob=...)')
    inv_lidar_aug = np.linalg.inv(lidar_aug_matrix(results))
    img_aug = results.get('img_aug_matrix')
    mats = []
    for v, (cam2img, lidar2cam) in enumerate(zip(results['cam2img'], results['lidar2cam'])):
        mat = camera_projection(cam2img, lidar2cam) @ inv_lidar_aug
        if img_aug is not None:
            mat = np.asarray(img_aug[v], dtype=np.float64) @ mat
        mats.append(mat)
    return np.stack(mats)


@TRANSFORMS.register_module()
class ComputeLidar2Img(BaseTransform):
    """Adds `lidar2img` [V, 4, 4] (float64) composed with all recorded augmentations."""

    def transform(self, results: dict) -> dict:
        results['lidar2img'] = lidar2img_matrices(results)
        return results
