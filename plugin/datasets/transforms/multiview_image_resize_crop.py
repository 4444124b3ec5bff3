"""Resize / crop / flip of all camera views, recording each view's pixel transform.

The transform of view v is stored as `img_aug_matrix[v]` (4x4, acting on projective pixel
coordinates (u*d, v*d, d, 1), so shifts sit in column 2), which `ComputeLidar2Img` folds
into `lidar2img`. Pixel i covers [i, i+1) (the convention of cv2.resize's pixel centres
at i + 0.5), so a resize by s is u' = s*u and a flip of a W-wide image is u' = W - u.

Two sampling rules:

* default (BEVDet-style, one draw per view unless `shared`): the scale is
  `final_w / input_w * U(resize_lim)`, the crop comes from the lower half of the resized
  image and is flipped with `flip_prob`; testing uses the mean scale, a bottom-aligned
  centred crop and no flip.
* `bot_pct_lim` given: the sampling of the official CMT `ResizeCropFlipImage`
  (Yan et al., ICCV 2023, github.com/junjie18/CMT, shared with PETR): dims truncated to
  int(size * scale), crop bottom edge at (1 - U(bot_pct_lim)) of the resized height, crop
  left edge int(U(0, resized_w - final_w)); testing with `test_scale='fit'` uses the
  smallest scale that covers the output, max(final_h / h, final_w / w), bottom edge at
  (1 - mean(bot_pct_lim)), centred horizontally. With CMT's resize_lim on 1600x900 images
  (R50: 0.47-0.625 absolute = 0.94-1.25 relative to 800/1600) the relative `resize_lim`
  here gives the same draws.

A crop reaching outside the resized image is zero-padded there (as in the official code).
"""
from typing import Optional, Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS


@TRANSFORMS.register_module()
class MultiViewImageResizeCrop(BaseTransform):
    """Args:
        final_size: (width, height) of every output view.
        resize_lim: range of the scale factor relative to `final_size[0] / input width`.
        flip_prob: probability of a horizontal flip (training only); CMT: 0.5.
        test_mode: deterministic crop, no flip.
        shared: one draw (scale, crop, flip) per sample, used by every view (official CMT);
            else one draw per view. All views must then have the same size.
        bot_pct_lim: (lo, hi) fraction of the resized height cut off below the crop: selects
            the official sampling rule (see the module docstring); CMT: (0.0, 0.0).
        test_scale: test-time scale, 'mean' (`final_w / w * mean(resize_lim)`) or 'fit'
            (the official `max(final_h / h, final_w / w)`: covers the output, no width cut).
    """

    def __init__(self, final_size: Sequence[int], resize_lim: Sequence[float] = (1.0, 1.0),
                 flip_prob: float = 0.0, test_mode: bool = False, shared: bool = False,
                 bot_pct_lim: Optional[Sequence[float]] = None, test_scale: str = 'mean'):
        if len(final_size) != 2 or min(final_size) <= 0:
            raise ValueError(f'MultiViewImageResizeCrop.final_size must be (width, height) > 0, got {final_size}')
        if not 0 < resize_lim[0] <= resize_lim[1]:
            raise ValueError(f'MultiViewImageResizeCrop.resize_lim must be 0 < lo <= hi, got {resize_lim}')
        if not 0 <= flip_prob <= 1:
            raise ValueError(f'MultiViewImageResizeCrop.flip_prob must be in [0, 1], got {flip_prob}')
        if bot_pct_lim is not None and not (len(bot_pct_lim) == 2 and 0 <= bot_pct_lim[0] <= bot_pct_lim[1] < 1):
            raise ValueError(f'MultiViewImageResizeCrop.bot_pct_lim must be (lo, hi) with 0 <= lo <= hi < 1, '
                             f'got {bot_pct_lim}')
        if test_scale not in ('mean', 'fit'):
            raise ValueError(f"MultiViewImageResizeCrop.test_scale must be 'mean' or 'fit', got {test_scale!r}")
        self.final_w, self.final_h = int(final_size[0]), int(final_size[1])
        self.resize_lim, self.flip_prob, self.test_mode = tuple(resize_lim), flip_prob, test_mode
        self.shared = shared
        self.bot_pct_lim = None if bot_pct_lim is None else tuple(bot_pct_lim)
        self.test_scale = test_scale

    def _scale(self, h: int, w: int) -> float:
        if self.test_mode and self.test_scale == 'fit':
            return max(self.final_h / h, self.final_w / w)
        rel = float(np.mean(self.resize_lim)) if self.test_mode else float(np.random.uniform(*self.resize_lim))
        return self.final_w / w * rel

    def _params(self, h: int, w: int):
        """The default rule: (scale, new_w, new_h, x0, y0, flip)."""
        scale = self._scale(h, w)
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

    def _official_params(self, h: int, w: int):
        """The official CMT rule (`bot_pct_lim` set): (scale, new_w, new_h, x0, y0, flip)."""
        scale = self._scale(h, w)
        # + 1e-6: a product like 1600 * (800 / 1600) must not truncate to 799 by rounding error
        new_w, new_h = int(w * scale + 1e-6), int(h * scale + 1e-6)
        if self.test_mode:
            bot = float(np.mean(self.bot_pct_lim))
            x0 = int(max(0, new_w - self.final_w) / 2)
        else:
            bot = float(np.random.uniform(*self.bot_pct_lim))
            x0 = int(np.random.uniform(0, max(0, new_w - self.final_w)))
        y0 = int((1 - bot) * new_h) - self.final_h
        flip = (not self.test_mode) and np.random.rand() < self.flip_prob
        return scale, new_w, new_h, x0, y0, flip

    def _draw(self, h: int, w: int):
        return self._params(h, w) if self.bot_pct_lim is None else self._official_params(h, w)

    def _apply(self, img: np.ndarray, params) -> tuple:
        """The view resized, cropped (zero outside the resized image) and flipped; its 4x4."""
        scale, new_w, new_h, x0, y0, flip = params
        out = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((self.final_h, self.final_w) + img.shape[2:], dtype=img.dtype)
        sx, sy = max(x0, 0), max(y0, 0)                       # the part inside the resized image
        ex, ey = min(x0 + self.final_w, new_w), min(y0 + self.final_h, new_h)
        if ex > sx and ey > sy:
            canvas[sy - y0:ey - y0, sx - x0:ex - x0] = out[sy:ey, sx:ex]
        mat = np.eye(4)
        mat[0, 0] = mat[1, 1] = scale
        mat[0, 2], mat[1, 2] = -x0, -y0          # shifts multiply d: column 2
        if flip:
            canvas = canvas[:, ::-1].copy()
            flip_mat = np.eye(4)
            flip_mat[0, 0], flip_mat[0, 2] = -1, self.final_w
            mat = flip_mat @ mat
        return canvas, mat

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError(f'MultiViewImageResizeCrop needs the views in results["img"] (sample '
                           f'{results.get("sample_idx")}): put it after LoadMultiViewImageFromFiles')
        shapes = {img.shape[:2] for img in results['img']}
        if self.shared and len(shapes) > 1:
            raise ValueError(f'MultiViewImageResizeCrop(shared=True) draws one resize/crop for all views, but '
                             f'results["img"] holds views of sizes {sorted(shapes)} (sample '
                             f'{results.get("sample_idx")})')
        shared = self._draw(*results['img'][0].shape[:2]) if self.shared and results['img'] else None
        imgs, mats = [], []
        for img in results['img']:
            canvas, mat = self._apply(img, shared if shared is not None else self._draw(*img.shape[:2]))
            imgs.append(canvas)
            mats.append(mat)
        prev = results.get('img_aug_matrix')
        mats = np.stack(mats)
        results['img_aug_matrix'] = mats if prev is None else mats @ np.asarray(prev)
        results['img'] = imgs
        results['img_shape'] = results['pad_shape'] = (self.final_h, self.final_w)
        return results
