"""Resize / crop / flip of all camera views, recording each view's pixel transform.

The transform of view v is stored as `img_aug_matrix[v]` (4x4, acting on projective pixel
coordinates (u*d, v*d, d, 1), so shifts sit in column 2), which `ComputeLidar2Img` folds
into `lidar2img`. Training draws the scale from `resize_lim`, the crop from the lower
part of the image (the sky carries no objects) and flips with `flip_prob`; testing uses
the mean scale, a bottom-aligned centred crop and no flip (BEVDet/CMT-style).
"""
from typing import Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS


@TRANSFORMS.register_module()
class MultiViewImageResizeCrop(BaseTransform):
    """Args:
        final_size: (width, height) of every output view.
        resize_lim: range of the scale factor relative to `final_size[0] / input width`.
        flip_prob: probability of a horizontal flip (training only).
        test_mode: deterministic centre crop, mean scale, no flip.
    """

    def __init__(self, final_size: Sequence[int], resize_lim: Sequence[float] = (1.0, 1.0),
                 flip_prob: float = 0.0, test_mode: bool = False):
        if len(final_size) != 2 or min(final_size) <= 0:
            raise ValueError(f'MultiViewImageResizeCrop.final_size must be (width, height) > 0, got {final_size}')
        if not 0 < resize_lim[0] <= resize_lim[1]:
            raise ValueError(f'MultiViewImageResizeCrop.resize_lim must be 0 < lo <= hi, got {resize_lim}')
        self.final_w, self.final_h = int(final_size[0]), int(final_size[1])
        self.resize_lim, self.flip_prob, self.test_mode = tuple(resize_lim), flip_prob, test_mode

    def _params(self, h: int, w: int):
        base = self.final_w / w
        rel = float(np.mean(self.resize_lim)) if self.test_mode else float(np.random.uniform(*self.resize_lim))
        scale = base * rel
        new_w, new_h = int(round(w * scale)), int(round(h * scale))
        max_x = max(new_w - self.final_w, 0)
        if self.test_mode:
            x0 = max_x // 2
            y0 = max(new_h - self.final_h, 0)
        else:
            x0 = int(np.random.randint(0, max_x + 1))
            y0 = int(np.random.randint(int(0.5 * max(new_h - self.final_h, 0)), max(new_h - self.final_h, 0) + 1))
        flip = (not self.test_mode) and np.random.rand() < self.flip_prob
        return scale, new_w, new_h, x0, y0, flip

    def transform(self, results: dict) -> dict:
        imgs, mats = [], []
        for img in results['img']:
            h, w = img.shape[:2]
            scale, new_w, new_h, x0, y0, flip = self._params(h, w)
            out = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
            canvas = np.zeros((self.final_h, self.final_w) + img.shape[2:], dtype=img.dtype)
            crop = out[y0:y0 + self.final_h, x0:x0 + self.final_w]
            canvas[:crop.shape[0], :crop.shape[1]] = crop
            mat = np.eye(4)
            mat[0, 0] = mat[1, 1] = scale
            mat[0, 2], mat[1, 2] = -x0, -y0          # shifts multiply d: column 2
            if flip:
                canvas = canvas[:, ::-1].copy()
                flip_mat = np.eye(4)
                flip_mat[0, 0], flip_mat[0, 2] = -1, self.final_w
                mat = flip_mat @ mat
            imgs.append(canvas)
            mats.append(mat)
        prev = results.get('img_aug_matrix')
        mats = np.stack(mats)
        results['img_aug_matrix'] = mats if prev is None else mats @ np.asarray(prev)
        results['img'] = imgs
        results['img_shape'] = results['pad_shape'] = (self.final_h, self.final_w)
        return results
