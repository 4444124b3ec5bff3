"""The CMT detector overfits a fixed batch of generated data."""
from tests.helpers.tiny_cmt import fit_fixed_batch, tiny_cfg


def test_tiny_model_overfits_a_fixed_batch(synthetic_root):
    history = fit_fixed_batch(tiny_cfg(synthetic_root), 60)
    assert min(history[-5:]) < 0.6 * history[0], history
