"""Multi-view image loading with JPEG decoding at 1/2, 1/4 or 1/8 resolution.

A model that looks at 256x144 crops of 1600x900 camera images spends most of its data
loading time decoding and converting full-resolution pixels it throws away. libjpeg can
decode directly at a reduced scale (OpenCV's IMREAD_REDUCED_COLOR_s, DCT-domain scaling),
which is several times cheaper. The reduction is recorded as an `img_aug_matrix` (the same
4x4 on projective pixel coordinates that `MultiViewImageResizeCrop` records and composes),
so `ComputeLidar2Img` keeps lidar2img exact while `cam2img` stays the file's calibration.
"""
import cv2
import numpy as np

from mmdet3d.datasets.transforms import LoadMultiViewImageFromFiles
from mmdet3d.registry import TRANSFORMS

_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
          8: cv2.IMREAD_REDUCED_COLOR_8}


def reduction_matrix(factor: int) -> np.ndarray:
    """Pixel transform of a 1/factor decode: reduced pixel j averages full pixels
    factor*j .. factor*j + factor - 1, so u' = (u + 0.5) / factor - 0.5."""
    mat = np.eye(4)
    mat[0, 0] = mat[1, 1] = 1.0 / factor
    mat[0, 2] = mat[1, 2] = 0.5 / factor - 0.5          # shifts multiply d: column 2
    return mat


@TRANSFORMS.register_module()
class LoadMultiViewImageFromFilesReduced(LoadMultiViewImageFromFiles):
    """mmdet3d's `LoadMultiViewImageFromFiles` (same arguments) plus `reduce` in {1, 2, 4, 8}:
    decode every view at 1/reduce resolution (colour, BGR) and record the matrix."""

    def __init__(self, reduce: int = 1, **kwargs):
        if reduce not in _FLAGS:
            raise ValueError(f'LoadMultiViewImageFromFilesReduced.reduce must be one of {sorted(_FLAGS)}, '
                             f'got {reduce}')
        super().__init__(**kwargs)
        self.reduce = reduce
        self.color_type = _FLAGS[reduce]   # mmcv.imfrombytes passes an int flag to cv2.imdecode

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        if self.reduce > 1:
            mat = np.broadcast_to(reduction_matrix(self.reduce), (len(results['img']), 4, 4))
            prev = results.get('img_aug_matrix')
            results['img_aug_matrix'] = mat.copy() if prev is None else mat @ np.asarray(prev)
        return results
