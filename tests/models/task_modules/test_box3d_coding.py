"""Box coding (`encode_boxes` / `decode_boxes`)."""
import math

import torch

import plugin  # noqa: F401
from plugin.models.task_modules import decode_boxes, encode_boxes


def test_box_coding_round_trip():
    boxes = torch.tensor([[1., 2., -1., 4., 2., 1.5, 0.3, 0.5, -0.2], [-3., 0., -2., 0.5, 0.6, 1.8, -2.9, 0., 0.]])
    codes = encode_boxes(boxes)
    assert torch.allclose(codes[0, 2], torch.tensor(-0.25)) and torch.allclose(codes[0, 3], torch.tensor(math.log(4.)))
    torch.testing.assert_close(decode_boxes(codes), boxes)
