"""Feeds ground truth through the real metric, as a check of format and coordinates.

If the info files, the LiDAR frame, the box convention (centre, size order, yaw) and the
lidar -> ego -> global chain are all right, the val ground truth submitted as predictions
through mmdet3d's NuScenesMetric (which runs nuscenes-devkit's DetectionEval) scores
mAP = NDS = 1; a box shifted by 1 m must score clearly lower.
"""
import copy
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmdet3d.registry import DATASETS, METRICS


def ground_truth_as_predictions(dataset, shift: Sequence[float] = (0.0, 0.0, 0.0)) -> List[dict]:
    """One NuScenesMetric result per sample: its GT boxes (LiDAR frame) with score 1."""
    results = []
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        ann = info['ann_info']
        boxes = ann['gt_bboxes_3d'].clone()
        boxes.translate(torch.as_tensor(np.asarray(shift, dtype=np.float32)))
        labels = torch.as_tensor(ann['gt_labels_3d'], dtype=torch.long)
        keep = labels >= 0
        results.append(dict(
            sample_idx=info['sample_idx'],
            pred_instances_3d=dict(bboxes_3d=boxes[keep], scores_3d=torch.ones(int(keep.sum())),
                                   labels_3d=labels[keep])))
    return results


def evaluate_ground_truth(cfg: Config, shift: Sequence[float] = (0.0, 0.0, 0.0),
                          jsonfile_prefix: str = None) -> Dict[str, float]:
    """Builds the config's test set and metric and scores the (shifted) ground truth."""
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    # annotations are parsed only outside test mode; keep every sample for the metric
    ds_cfg.update(pipeline=[], test_mode=False, filter_empty_gt=False)
    dataset = DATASETS.build(ds_cfg)
    metric_cfg = copy.deepcopy(cfg.test_evaluator)
    if jsonfile_prefix is not None:
        metric_cfg['jsonfile_prefix'] = jsonfile_prefix
    metric = METRICS.build(metric_cfg)
    metric.dataset_meta = dataset.metainfo
    return metric.compute_metrics(ground_truth_as_predictions(dataset, shift))
