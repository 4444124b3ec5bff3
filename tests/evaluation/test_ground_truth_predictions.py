"""NuScenesMetric on ground truth given as predictions: exact boxes score one, shifted
boxes score less."""
import pytest


def test_ground_truth_scores_one_and_shifted_ground_truth_drops(synthetic_cfg):
    from plugin.evaluation import evaluate_ground_truth
    exact = evaluate_ground_truth(synthetic_cfg)
    assert exact['pred_instances_3d_NuScenes/mAP'] >= 0.99
    assert exact['pred_instances_3d_NuScenes/NDS'] >= 0.99
    shifted = evaluate_ground_truth(synthetic_cfg, shift=(1.0, 0.0, 0.0))
    assert shifted['pred_instances_3d_NuScenes/mAP'] < 0.8
    assert shifted['pred_instances_3d_NuScenes/NDS'] < 0.85
    assert shifted['pred_instances_3d_NuScenes/mATE'] == pytest.approx(1.0, abs=0.05)
