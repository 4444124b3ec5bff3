"""GridMask on the raw camera views (train-time image augmentation of CMT).

GridMask (Chen et al., "GridMask Data Augmentation", 2020) blanks a regular grid of
squares. Official CMT (Yan et al., ICCV 2023, github.com/junjie18/CMT, `GridMask(True, True,
rotate=1, offset=False, ratio=0.5, mode=1, prob=0.7)` in its detector) applies it to the
normalised image batch during training, so a blanked pixel becomes 0, the normalisation
mean. Here it runs in the data pipeline on the raw views and writes `fill` (the
normalisation mean, in the images' channel order) into the blanked pixels, which is the
same image after normalisation.

The mask follows the official construction: period d ~ randint(2, h), band width
l = min(max(int(d * ratio + 0.5), 1), d - 1), bands of rows (use_h) and of columns (use_w)
starting at randint(d) on a 1.5x larger canvas, rotated by randint(rotate) degrees, centre
crop to the image. mode=0 blanks the bands, mode=1 keeps the bands and blanks the rest
(with ratio 0.5: about a quarter of the image). One coin (`prob`) per sample; a mask per
view (official: one coin and one mask for the whole batch of views). The official noise
`offset` (off in CMT) is not provided.
"""
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS
from PIL import Image


@TRANSFORMS.register_module()
class MultiViewGridMask(BaseTransform):
    """Args:
        fill: per-channel value of blanked pixels (the data preprocessor's mean, in the
            channel order of `results['img']`: BGR for mmdet3d's image loading).
        prob: probability that a sample's views are masked.
        use_h / use_w: bands of rows / of columns.
        rotate: the mask is rotated by randint(rotate) degrees (1: never).
        ratio: band width relative to the period.
        mode: 0 blanks the bands, 1 blanks all but the bands.
    """

    def __init__(self, fill: Sequence[float], prob: float = 0.7, use_h: bool = True, use_w: bool = True,
                 rotate: int = 1, ratio: float = 0.5, mode: int = 1):
        if not 0 <= prob <= 1:
            raise ValueError(f'MultiViewGridMask.prob must be in [0, 1], got {prob}')
        if mode not in (0, 1):
            raise ValueError(f'MultiViewGridMask.mode must be 0 or 1, got {mode}')
        if int(rotate) < 1:
            raise ValueError(f'MultiViewGridMask.rotate must be >= 1 (randint upper bound), got {rotate}')
        if not 0 < ratio <= 1:
            raise ValueError(f'MultiViewGridMask.ratio must be in (0, 1], got {ratio}')
        self.fill = np.asarray(fill, dtype=np.float32)
        self.prob, self.use_h, self.use_w = prob, use_h, use_w
        self.rotate, self.ratio, self.mode = int(rotate), ratio, mode

    def keep_mask(self, h: int, w: int) -> np.ndarray:
        """[h, w] bool: True where the view keeps its pixel."""
        if h < 3:
            raise ValueError(f'MultiViewGridMask needs views at least 3 pixels high, got {h}')
        hh, ww = int(1.5 * h), int(1.5 * w)
        d = np.random.randint(2, h)
        band = min(max(int(d * self.ratio + 0.5), 1), d - 1)
        grid = np.ones((hh, ww), np.uint8)
        st_h, st_w = np.random.randint(d), np.random.randint(d)
        if self.use_h:
            for i in range(hh // d):
                s = d * i + st_h
                grid[s:min(s + band, hh), :] = 0
        if self.use_w:
            for i in range(ww // d):
                s = d * i + st_w
                grid[:, s:min(s + band, ww)] = 0
        angle = np.random.randint(self.rotate)
        if angle:
            grid = np.asarray(Image.fromarray(grid).rotate(angle))
        grid = grid[(hh - h) // 2:(hh - h) // 2 + h, (ww - w) // 2:(ww - w) // 2 + w]
        keep = grid.astype(bool)
        return ~keep if self.mode == 1 else keep

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError(f'MultiViewGridMask needs the views in results["img"] (sample '
                           f'{results.get("sample_idx")})')
        if np.random.rand() > self.prob:
            return results
        imgs = []
        for img in results['img']:
            if img.ndim != 3 or img.shape[2] != len(self.fill):
                raise ValueError(f'MultiViewGridMask.fill has {len(self.fill)} channels, but results["img"] holds '
                                 f'a view of shape {img.shape}')
            out = img.astype(np.float32)     # the mean is not an integer: keep it exact
            out[~self.keep_mask(*img.shape[:2])] = self.fill
            imgs.append(out)
        results['img'] = imgs
        return results
