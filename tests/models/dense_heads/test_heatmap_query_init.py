"""CmtHead(query_init='heatmap'): queries at the top-k local maxima of the auxiliary class
heatmap (TransFusion), with the peak's class embedded in their content."""
import pytest
import torch

from plugin.models.utils.bev_sampling import sample_bev
from plugin.models.utils.camera_geometry import CameraGeometry
from tests.helpers.camera_rig import IMG_C, IMG_H, IMG_W, STRIDE, metas
from tests.helpers.small_heads import small_cmt_head


def planted_heatmap(head, logits):
    """Make the head's auxiliary heatmap return `logits` [B, C, H, W] whatever the BEV map."""
    head.aux_heatmap.forward = lambda bev: logits


def test_reference_points_sit_on_the_strongest_local_maxima():
    torch.manual_seed(0)
    head = small_cmt_head('bev', aux_heatmap_cfg=dict(), query_init='heatmap', num_query=3).eval()
    h, w = 6, 8
    logits = torch.full((1, 2, h, w), -8.0)
    logits[0, 0, 1, 2] = 3.0          # car peak at row 1, col 2
    logits[0, 1, 4, 6] = 2.0          # pedestrian peak at row 4, col 6
    logits[0, 0, 1, 3] = 2.5          # next to the car peak: not a local maximum
    logits[0, 1, 5, 0] = 1.0          # a weaker isolated peak
    planted_heatmap(head, logits)
    ref, labels = head.heatmap_queries(torch.randn(1, 16, h, w))
    expected_xy = torch.tensor([[(2 + 0.5) / w, (1 + 0.5) / h], [(6 + 0.5) / w, (4 + 0.5) / h],
                                [(0 + 0.5) / w, (5 + 0.5) / h]])
    assert torch.allclose(ref[0, :, :2], expected_xy)
    assert labels[0].tolist() == [0, 1, 1]
    # the height is the learned height of each query slot
    assert torch.equal(ref[0, :, 2], head.reference_points.weight[:3, 2].detach())


def test_forward_decodes_from_the_peaks_and_embeds_their_class():
    torch.manual_seed(0)
    head = small_cmt_head('bev', aux_heatmap_cfg=dict(), query_init='heatmap', num_query=4).eval()
    bev = torch.randn(1, 16, 6, 6)
    logits = torch.full((1, 2, 6, 6), -8.0)
    for k, (c, r, col) in enumerate([(0, 0, 0), (1, 2, 3), (0, 5, 5), (1, 4, 1)]):
        logits[0, c, r, col] = 4.0 - k
    planted_heatmap(head, logits)
    grab = []
    head.transformer.register_forward_pre_hook(lambda m, a: grab.append((a[0].clone(), a[1].clone())))
    outs, _ = head(bev, None, [{}])
    assert outs[0]['cls'].shape == (2, 1, 4, 2) and torch.isfinite(outs[0]['codes']).all()
    query, query_pos = grab[0]
    ref, labels = head.heatmap_queries(bev)
    # position embedding of the peaks; content = BEV feature there + the class embedding
    assert torch.allclose(query_pos, head.query_embedding(ref, None))
    bev_memory, _ = head._bev_memory(bev)
    content = head.content_proj(sample_bev(bev_memory, ref[..., :2])) + head.query_class_embed(labels)
    assert torch.allclose(query, content, atol=1e-6)
    # the predicted centres start at the peaks: with zero regression they are the cell centres
    for task_head in head.task_heads:
        torch.nn.init.zeros_(task_head.branches['center'][-1].weight)
        torch.nn.init.zeros_(task_head.branches['center'][-1].bias)
    outs, _ = head(bev, None, [{}])
    x0, y0, _, x1, y1, _ = head.pc_range
    centres = outs[0]['codes'][-1, 0, :, :2]
    expected = torch.stack([x0 + ref[0, :, 0] * (x1 - x0), y0 + ref[0, :, 1] * (y1 - y0)], -1)
    assert torch.allclose(centres, expected, atol=1e-4)


def test_dn_queries_keep_their_content_and_training_runs():
    torch.manual_seed(0)
    head = small_cmt_head('bev', aux_heatmap_cfg=dict(), query_init='heatmap',
                          dn_cfg=dict(num_groups=2, box_noise_scale=1.0, split=0.75)).train()
    bev = torch.randn(1, 16, 6, 6, requires_grad=True)
    boxes = [torch.tensor([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.1, 0.0, 0.0]])]
    labels = [torch.tensor([0])]
    outs, dn = head(bev, None, [{}], boxes, labels)
    assert outs[0]['cls'].shape[2] == dn.pad_size + head.num_query
    losses = head.loss(outs, dn, boxes, labels, bev_feat=bev)
    sum(losses.values()).backward()
    assert head.query_class_embed.weight.grad.abs().sum() > 0
    assert head.aux_heatmap.net[-1].weight.grad.abs().sum() > 0


def test_without_a_bev_map_the_learned_points_are_used():
    torch.manual_seed(0)
    head = small_cmt_head('bev', aux_heatmap_cfg=dict(), query_init='heatmap', in_channels_img=IMG_C).eval()
    ref = head.reference_points.weight.detach()
    grab = []
    head.transformer.register_forward_pre_hook(lambda m, a: grab.append(a[1].clone()))
    imgs = torch.randn(1, 3, IMG_C, IMG_H // STRIDE, IMG_W // STRIDE)
    head(None, imgs, metas(batch=1))
    geometry = CameraGeometry.from_metas(metas(batch=1), input_shape=(IMG_H, IMG_W), num_views=3, device='cpu')
    assert torch.isfinite(grab[0]).all()
    assert torch.allclose(grab[0], head.query_embedding(ref[None], geometry))


def test_bad_query_init_settings_are_refused():
    with pytest.raises(ValueError, match='query_init'):
        small_cmt_head('bev', query_init='topk')
    with pytest.raises(ValueError, match='aux_heatmap_cfg'):
        small_cmt_head('bev', query_init='heatmap')
    head = small_cmt_head('bev', aux_heatmap_cfg=dict(), query_init='heatmap', num_query=100)
    with pytest.raises(ValueError, match='num_query=100'):
        head(torch.randn(1, 16, 4, 4), None, [{}])
