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


def test_score_prior_multiplies_the_class_probabilities_before_the_top_k():
    coder = NMSFreeCoder(max_num=2)
    codes = encode_boxes(torch.tensor([[1., 1., -1., 4., 2., 1.5, 0., 0., 0.],
                                       [2., 2., -1., 4., 2., 1.5, 0., 0., 0.],
                                       [3., 3., -1., 4., 2., 1.5, 0., 0., 0.]]))
    logits = torch.tensor([[2., 0.], [1., 1.], [0., 3.]])
    prior = torch.tensor([[0.1, 0.0], [1.0, 0.0], [0.0, 0.5]])
    out = coder.decode_single(logits, codes, prior)
    p = torch.sigmoid(logits) * prior
    # ranked by probability x prior: query 1 class 0 (0.731), then query 2 class 1 (0.476)
    assert out['scores'].tolist() == pytest.approx(sorted(p.flatten().tolist(), reverse=True)[:2])
    assert out['bboxes'][:, 0].tolist() == pytest.approx([2.0, 3.0]) and out['labels'].tolist() == [0, 1]
    # without a prior, query 2 class 1 (0.953) then query 0 class 0 (0.881)
    plain = coder.decode_single(logits, codes)
    assert plain['bboxes'][:, 0].tolist() == pytest.approx([3.0, 1.0])
    with pytest.raises(ValueError, match='score_prior'):
        coder.decode_single(logits, codes, prior[:2])
