"""`AttentionBiasGenerator`: the window sizes it accepts and the bias scale."""
import pytest
import torch

import plugin  # noqa: F401
from plugin.models.aqr import AQRWeightGenerator, AttentionBiasGenerator
from tests.helpers.aqr_inputs import PC_RANGE, aqr_inputs


@pytest.mark.parametrize('bad', [4, 0, -3, 2.5, True, '5'])
def test_invalid_window_sizes_fail_at_build_naming_the_key(bad):
    with pytest.raises(ValueError, match=r'aqr_cfg\.bias\.window_size'):
        AttentionBiasGenerator(window_size=bad)
    with pytest.raises(ValueError, match=r'aqr_cfg\.router\.window_sizes'):
        AQRWeightGenerator(16, PC_RANGE, window_sizes=(5, bad))


def test_bias_generator_scale_and_windows():
    gen = AttentionBiasGenerator(window_size=5, cam_window_size=3, bias_scale=2.0, learnable_scale=True,
                                 max_scale=3.0)
    assert isinstance(gen.bias_scale, torch.nn.Parameter) and gen.window_sizes == (5, 3)
    layout = aqr_inputs()[6]
    aqr = AQRWeightGenerator(16, PC_RANGE, num_heads=4)
    w = aqr(*aqr_inputs())
    with torch.no_grad():
        gen.bias_scale.fill_(10.0)                                  # clamped to max_scale
    bias = gen(w._replace(lidar_weight=torch.ones_like(w.lidar_weight)), layout)
    assert (bias.bev_window, bias.cam_window) == (5, 3)
    assert float(bias.to_dense().detach().max()) == pytest.approx(3.0)
    with pytest.raises(ValueError, match='bias_scale'):
        AttentionBiasGenerator(bias_scale=-1.0)
