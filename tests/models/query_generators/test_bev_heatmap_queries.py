"""BEVHeatmapQueries in CmtHead: queries at the top-k local maxima of the auxiliary class
heatmap (TransFusion), with the peak's class embedded in their content and a learned
height per class, next to `learned_queries` of CMT's learned reference points."""
import pytest
import torch

from plugin.models.utils.bev_sampling import sample_bev
from plugin.models.query_generators import QueryInputs
from tests.helpers.small_heads import small_cmt_head


def heatmap_head(**kwargs):
    return small_cmt_head('bev', aux_heatmap_cfg=dict(), query_generator=dict(type='BEVHeatmapQueries'), **kwargs)


def inputs(logits):
    return QueryInputs(logits.shape[0], bev_heatmap=logits)


def planted_heatmap(head, logits):
    """Make the head's auxiliary heatmap return `logits` [B, C, H, W] whatever the BEV map."""
    head.aux_heatmap.forward = lambda bev: logits


def capture_transformer_inputs(head):
    grab = []
    head.transformer.register_forward_pre_hook(lambda m, a: grab.append((a[0].clone(), a[1].clone())))
    return grab


def test_peaks_are_the_strongest_local_maxima_rows_y_columns_x():
    torch.manual_seed(0)
    head = heatmap_head(num_query=3).eval()
    h, w = 6, 8
    logits = torch.full((1, 2, h, w), -8.0)
    logits[0, 0, 1, 2] = 3.0          # car peak at row 1, col 2
    logits[0, 1, 4, 6] = 2.0          # pedestrian peak at row 4, col 6
    logits[0, 0, 1, 3] = 2.5          # next to the car peak: not a local maximum
    logits[0, 1, 5, 0] = 1.0          # a weaker isolated peak
    xy, labels, _ = head.query_generator.peaks(logits)
    expected = torch.tensor([[(2 + 0.5) / w, (1 + 0.5) / h], [(6 + 0.5) / w, (4 + 0.5) / h],
                             [(0 + 0.5) / w, (5 + 0.5) / h]])
    assert torch.allclose(xy[0], expected) and labels[0].tolist() == [0, 1, 1]


def test_initial_queries_heatmap_peaks_then_learned_points_with_class_heights_and_content():
    torch.manual_seed(0)
    head = heatmap_head(num_query=5, learned_queries=2).eval()
    gen = head.query_generator
    assert head.reference_points.weight.shape == (2, 3) and gen.num_query == 3
    logits = torch.full((2, 2, 6, 6), -8.0)
    logits[:, 0, 0, 0], logits[:, 1, 2, 3], logits[:, 0, 5, 5] = 4.0, 3.0, 2.0
    with torch.no_grad():
        gen.class_height.weight[:] = torch.tensor([[1.0], [-2.0]])
        gen.class_embed.weight.normal_()
    ref, content = head.initial_queries(inputs(logits))[:2]
    assert gen.peaks(logits)[1][0].tolist() == [0, 1, 0]
    assert ref.shape == (2, 5, 3) and content.shape == (2, 5, 32)
    assert torch.allclose(ref[0, :3, 2], torch.sigmoid(torch.tensor([1.0, -2.0, 1.0])))
    assert torch.equal(ref[1, 3:], head.reference_points.weight)
    # the peaks' content is their class embedding; the learned points get none
    assert torch.equal(content[0, :3], gen.class_embed.weight[[0, 1, 0]]) and not content[:, 3:].any()
    # the heights and the learned points are trained through the reference points
    ref.sum().backward()
    assert gen.class_height.weight.grad.abs().sum() > 0 and head.reference_points.weight.grad is not None


def test_forward_decodes_from_the_peaks_and_embeds_their_class():
    torch.manual_seed(0)
    head = heatmap_head(num_query=4, learned_queries=1).eval()
    torch.nn.init.normal_(head.query_generator.class_embed.weight)
    bev = torch.randn(1, 16, 6, 6)
    logits = torch.full((1, 2, 6, 6), -8.0)
    for k, (c, r, col) in enumerate([(0, 0, 0), (1, 2, 3), (0, 5, 5)]):
        logits[0, c, r, col] = 4.0 - k
    planted_heatmap(head, logits)
    grab = capture_transformer_inputs(head)
    outs, _ = head(bev, None)
    assert outs[0]['cls'].shape == (2, 1, 4, 2) and torch.isfinite(outs[0]['codes']).all()
    query, query_pos = grab[0]
    ref = head.initial_queries(inputs(logits)).ref
    labels = head.query_generator.peaks(logits)[1]
    # position embedding of the points; content = BEV feature there + the class embedding (peaks only)
    assert torch.allclose(query_pos, head.query_embedding(ref, None))
    bev_memory, _ = head._bev_memory(bev)
    content = head.content_proj(sample_bev(bev_memory, ref[..., :2]))
    content[:, :3] += head.query_generator.class_embed(labels)
    assert torch.allclose(query, content, atol=1e-6)
    # the predicted centres start at the peaks: with zero regression they are the cell centres
    for task_head in head.task_heads:
        torch.nn.init.zeros_(task_head.branches['center'][-1].weight)
        torch.nn.init.zeros_(task_head.branches['center'][-1].bias)
    outs, _ = head(bev, None)
    x0, y0, _, x1, y1, _ = head.pc_range
    centres = outs[0]['codes'][-1, 0, :, :2]
    expected = torch.stack([x0 + ref[0, :, 0] * (x1 - x0), y0 + ref[0, :, 1] * (y1 - y0)], -1)
    assert torch.allclose(centres, expected, atol=1e-4)


def test_dn_queries_keep_their_content_and_every_new_parameter_trains():
    torch.manual_seed(0)
    head = heatmap_head(learned_queries=5, dn_cfg=dict(num_groups=2, box_noise_scale=1.0, split=0.75)).train()
    bev = torch.randn(1, 16, 6, 6)
    boxes = [torch.tensor([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.1, 0.0, 0.0]])]
    labels = [torch.tensor([0])]
    grab = capture_transformer_inputs(head)
    torch.manual_seed(1)                                   # the same DN noise in both passes
    head(bev, None, boxes, labels)
    torch.nn.init.normal_(head.query_generator.class_embed.weight)
    torch.manual_seed(1)
    outs, dn = head(bev, None, boxes, labels)
    pad, peaks = dn.pad_size, head.num_query - head.learned_queries
    assert outs[0]['cls'].shape[2] == pad + head.num_query
    plain, embedded = grab[0][0], grab[1][0]
    # only the heatmap queries carry the class embedding: not the DN queries, not the learned ones
    assert torch.equal(plain[:, :pad], embedded[:, :pad])
    assert not torch.allclose(plain[:, pad:pad + peaks], embedded[:, pad:pad + peaks])
    assert torch.equal(plain[:, pad + peaks:], embedded[:, pad + peaks:])
    losses = head.loss(outs, dn, boxes, labels)
    sum(losses.values()).backward()
    for param in (head.query_generator.class_embed.weight, head.query_generator.class_height.weight,
                  head.reference_points.weight):
        assert param.grad.abs().sum() > 0
    assert head.aux_heatmap.net[-1].weight.grad.abs().sum() > 0


def test_without_a_bev_map_heatmap_queries_are_an_error_naming_the_option():
    head = heatmap_head()
    with pytest.raises(ValueError, match='BEVHeatmapQueries needs the LiDAR BEV map'):
        head.initial_queries(QueryInputs(1))


def test_bad_query_settings_are_refused():
    with pytest.raises(KeyError, match='TopK'):
        small_cmt_head('bev', query_generator=dict(type='TopK'))
    with pytest.raises(ValueError, match='learned_queries'):
        small_cmt_head('bev', learned_queries=3)
    with pytest.raises(ValueError, match='learned_queries'):
        heatmap_head(num_query=20, learned_queries=21)
    with pytest.raises(ValueError, match='num_query=20'):
        small_cmt_head('bev', aux_heatmap_cfg=dict(), num_query=20, learned_queries=5,
                       query_generator=dict(type='BEVHeatmapQueries', num_query=10))
    head = heatmap_head(num_query=100)
    with pytest.raises(ValueError, match='100 queries exceed'):
        head(torch.randn(1, 16, 4, 4), None, [{}])


def test_score_prior_keeps_a_peak_query_at_its_class_scaled_by_its_heatmap_score():
    torch.manual_seed(0)
    head = heatmap_head(num_query=4, learned_queries=1, query_score_prior=True).eval()
    logits = torch.full((1, 2, 6, 6), -8.0)
    logits[0, 1, 0, 0], logits[0, 0, 2, 3], logits[0, 1, 5, 5] = 2.0, 1.0, 0.0
    queries = head.initial_queries(inputs(logits))
    assert queries.labels.tolist() == [[1, 0, 1, -1]]
    assert queries.scores[0, :3].tolist() == pytest.approx(torch.sigmoid(torch.tensor([2.0, 1.0, 0.0])).tolist())
    prior = head.score_prior(queries)
    s = torch.sigmoid(torch.tensor([2.0, 1.0, 0.0]))
    expected = torch.tensor([[[0.0, s[0]], [s[1], 0.0], [0.0, s[2]], [1.0, 1.0]]])
    assert torch.allclose(prior, expected)
    # the prior reaches the outputs (in the task's class order) at inference, and only when asked for
    planted_heatmap(head, logits)
    outs, _ = head(torch.randn(1, 16, 6, 6), None, [{}])
    assert torch.allclose(outs[0]['score_prior'], expected)
    head.query_score_prior = False
    assert 'score_prior' not in head(torch.randn(1, 16, 6, 6), None, [{}])[0][0]
    with pytest.raises(ValueError, match='query_score_prior'):
        small_cmt_head('bev', query_score_prior=True)
