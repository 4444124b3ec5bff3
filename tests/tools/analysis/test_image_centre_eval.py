"""tools/analysis/image_centre_eval.py: its centre recall and depth error on hand-made
heatmaps and targets."""
import math

import torch

import plugin  # noqa: F401
from plugin.models.dense_heads import CentreTargets, ImageCentreHead
from tests.helpers.repo import load_tool


def test_recall_counts_peaks_within_one_cell_of_the_right_class_and_view():
    tool = load_tool('tools/analysis/image_centre_eval.py')
    head = ImageCentreHead(in_channels=4, num_classes=2)
    b, v, k, h, w = 1, 2, 2, 6, 8
    heat = torch.zeros(b, v, k, h, w)
    mask = torch.zeros(b, v, h, w, dtype=torch.bool)
    depth = torch.zeros(b, v, h, w)
    for view, cls, row, col, d in ((0, 1, 2, 3, 10.0), (1, 0, 4, 6, 20.0), (1, 1, 1, 1, 5.0)):
        heat[0, view, cls, row, col] = 1
        mask[0, view, row, col] = True
        depth[0, view, row, col] = d
    targets = CentreTargets(heat, torch.zeros(b, v, 2, h, w), depth, mask, depth, mask)
    logits = torch.full((b, v, k, h, w), -9.0)
    logits[0, 0, 1, 3, 4] = 4.0          # one cell off diagonally, right class: found
    logits[0, 1, 1, 4, 6] = 3.0          # right cell, wrong class: found only class-agnostically
    logits[0, 0, 1, 1, 1] = 2.0          # right cell and class, wrong view: not found
    log_depth = torch.zeros(b, v, h, w)
    log_depth[0, 0, 2, 3] = math.log(11.0)    # 10 % off
    log_depth[0, 1, 4, 6] = math.log(20.0)    # exact
    log_depth[0, 1, 1, 1] = math.log(4.0)     # 20 % off
    m = tool.centre_metrics(dict(heatmap=logits, log_depth=log_depth), targets, head, top_k=3)
    assert (m['centres'], m['found'], m['found_any']) == (3, 1, 2)
    assert math.isclose(m['rel_sum'], 0.1 + 0.0 + 0.2, abs_tol=1e-5)


def test_query_coverage_counts_boxes_with_a_reference_point_within_each_distance():
    tool = load_tool('tools/analysis/image_centre_eval.py')
    pc_range = [-50.0, -50.0, -5.0, 50.0, 50.0, 3.0]
    # queries at (10, 0), (0, 20.7) and (-30, -30) metres (normalised)
    points = torch.tensor([[10.0, 0.0, 0.0], [0.0, 20.7, 0.0], [-30.0, -30.0, 0.0]])
    lo, hi = torch.tensor(pc_range[:3]), torch.tensor(pc_range[3:])
    ref = ((points - lo) / (hi - lo))[None]
    boxes = [torch.tensor([[10.3, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],       # 0.3 m from a query
                           [0.0, 22.0, 0.0, 4.0, 2.0, 1.5, 0.0],       # 1.3 m
                           [30.0, 30.0, 0.0, 4.0, 2.0, 1.5, 0.0]])]    # far from all
    m = tool.query_coverage(ref, boxes, pc_range)
    assert m == {'boxes': 3, 'covered_0.5': 1, 'covered_1.0': 1, 'covered_2.0': 2, 'covered_4.0': 2}
