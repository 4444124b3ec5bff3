"""BEV flip of points and boxes that leaves multi-view images alone.

mmdet3d's `RandomFlip3D` also runs mmcv's 2D flip on `img` whenever it is present,
whatever `sync_2d` says; on a list of views that flips the stacked array along the wrong
axis and records no matrix, so lidar2img can no longer follow. This subclass hides the
images from it: points/boxes are flipped and recorded as usual (`pcd_horizontal_flip`,
`pcd_vertical_flip`, `transformation_3d_flow`), images stay untouched and
`ComputeLidar2Img` folds the flip into lidar2img. Image flips belong to
`MultiViewImageResizeCrop`.
"""
from mmdet3d.datasets.transforms import RandomFlip3D
from mmdet3d.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LiDARRandomFlip3D(RandomFlip3D):

    def __init__(self, **kwargs):
        kwargs['sync_2d'] = False
        super().__init__(**kwargs)

    def transform(self, results: dict) -> dict:
        img = results.pop('img', None)
        try:
            results = super().transform(results)
        finally:
            if img is not None:
                results['img'] = img
        return results
