"""mmdet3d's GT database sampler that also tells which database entries it drew.

mmdet3d 1.4's `DataBaseSampler.sample_all` returns the drawn objects' boxes, labels and
points but not their database entries, which say where each object was cut from
(`image_idx`: the source sample's `sample_idx`). Pasting an object's image patch
(`ObjectSampleWithImages`, after official CMT's `UnifiedObjectSample`) needs that source.
This sampler keeps the entries of its latest `sample_all` in `last_drawn`, in the order of
the returned boxes; sampling itself is mmdet3d's, unchanged.
"""
from typing import List

import numpy as np
from mmdet3d.datasets.transforms import DataBaseSampler
from mmdet3d.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RecordingDataBaseSampler(DataBaseSampler):
    """`DataBaseSampler` (same arguments) with `last_drawn`: the database entries (dicts with
    `image_idx`, `box3d_lidar`, `name`, ...) of the objects its latest `sample_all` returned."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_drawn: List[dict] = []

    def sample_all(self, gt_bboxes: np.ndarray, gt_labels: np.ndarray, *args, **kwargs):
        self.last_drawn = []
        return super().sample_all(gt_bboxes, gt_labels, *args, **kwargs)

    def sample_class_v2(self, name: str, num: int, gt_bboxes: np.ndarray) -> List[dict]:
        drawn = super().sample_class_v2(name, num, gt_bboxes)
        self.last_drawn.extend(drawn)
        return drawn
