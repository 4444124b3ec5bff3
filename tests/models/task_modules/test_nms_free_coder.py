"""`NMSFreeCoder`: top-k and the post-centre range."""
import pytest
import torch

import plugin  # noqa: F401
from plugin.models.task_modules import NMSFreeCoder, encode_boxes


def test_nms_free_coder_top_k_and_range():
    coder = NMSFreeCoder(max_num=2, post_center_range=[-10, -10, -5, 10, 10, 5])
    codes = encode_boxes(torch.tensor([[1., 1., -1., 4., 2., 1.5, 0.2, 0., 0.],
                                       [50., 0., -1., 4., 2., 1.5, 0., 0., 0.],
                                       [-2., 3., -1., 1., 1., 1., 0., 0., 0.]]))
    logits = torch.tensor([[3., -9.], [9., -9.], [-9., 1.]])
    out = coder.decode_single(logits, codes)
    # the best pair (query 1) is out of range; kept: query 0 class 0
    assert out['labels'].tolist() == [0] and out['bboxes'].shape == (1, 9)
    torch.testing.assert_close(out['bboxes'][0, :7], torch.tensor([1., 1., -1., 4., 2., 1.5, 0.2]))
    assert out['scores'][0] == pytest.approx(torch.sigmoid(torch.tensor(3.)).item())
