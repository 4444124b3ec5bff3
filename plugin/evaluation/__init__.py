"""Evaluation helpers (the metric itself is mmdet3d's NuScenesMetric)."""
from .ground_truth_predictions import evaluate_ground_truth, ground_truth_as_predictions

__all__ = ['evaluate_ground_truth', 'ground_truth_as_predictions']
