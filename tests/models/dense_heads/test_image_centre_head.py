"""ImageCentreHead: its targets against a hand-computed pinhole rig (a plain, a flipped and
a cropped view), its losses and its peaks."""
import math

import numpy as np
import pytest
import torch

import plugin  # noqa: F401
from plugin.models.dense_heads import ImageCentreHead
from plugin.models.utils import CameraGeometry
from tests.helpers.pinhole_cameras import pinhole_camera

F, CX, CY, W, H = 500.0, 320.0, 180.0, 640, 360
T = (0.5, 0.1, 1.6)


def _lidar2img(img_aug=None, yaw=0.0):
    l2c, k = pinhole_camera(yaw, t=T, f=F, cx=CX, cy=CY)
    k4 = np.eye(4)
    k4[:3, :3] = k
    mat = k4 @ l2c
    return mat if img_aug is None else img_aug @ mat


def _pixel(point, img_aug=None):
    """The spec, written out for a yaw-0 camera: camera x = -(y - ty), y = -(z - tz),
    z = x - tx; u = f x / z + cx, v = f y / z + cy; then the image augmentation on
    (u d, v d, d) as the projective pixel convention has it."""
    xc, yc, zc = -(point[1] - T[1]), -(point[2] - T[2]), point[0] - T[0]
    u, v = F * xc / zc + CX, F * yc / zc + CY
    if img_aug is not None:
        p = img_aug @ np.array([u * zc, v * zc, zc, 1.0])
        u, v = p[0] / p[2], p[1] / p[2]
    return u, v, zc


FLIP = np.array([[-1.0, 0, W, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])   # u -> W - u
CROP = np.array([[0.5, 0, -40.0, 0], [0, 0.5, -20.0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])   # half size, shifted


@pytest.fixture
def head():
    torch.manual_seed(0)
    h = ImageCentreHead(in_channels=8, num_classes=3, feat_channels=8)
    h.init_weights()
    return h


def _geometry(augs):
    mats = torch.tensor(np.stack([_lidar2img(a) for a in augs])[None], dtype=torch.float32)
    return CameraGeometry(mats, torch.tensor([[float(H), float(W)]]), (H, W))


# (x, y, z bottom) and sizes (l, w, h): gravity centre at z + h / 2
BOX = torch.tensor([[20.0, 2.0, 0.6, 4.0, 2.0, 1.6, 0.3]])


@pytest.mark.parametrize('aug', [None, FLIP, CROP], ids=['plain', 'flipped', 'cropped'])
def test_targets_match_the_pinhole_rig(head, aug):
    geometry = _geometry([aug])
    t = head.targets([BOX], [torch.tensor([2])], geometry, (H // 8, W // 8))
    u, v, depth = _pixel((20.0, 2.0, 0.6 + 0.8), aug)
    col, row = int(u / 8), int(v / 8)
    assert t.mask.sum() == 1 and t.mask[0, 0, row, col]
    assert t.heatmap[0, 0, 2, row, col] == 1 and t.heatmap[0, 0, :2].sum() == 0
    assert t.heatmap[0, 0, 2].eq(1).sum() == 1
    torch.testing.assert_close(t.offset[0, 0, :, row, col], torch.tensor([u / 8 - col, v / 8 - row], dtype=torch.float32),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(t.depth[0, 0, row, col], torch.tensor(depth, dtype=torch.float32), atol=1e-4, rtol=0)


def test_centres_behind_or_outside_give_no_target(head):
    behind = torch.tensor([[-20.0, 2.0, 0.6, 4.0, 2.0, 1.6, 0.0]])
    outside = torch.tensor([[5.0, 30.0, 0.6, 4.0, 2.0, 1.6, 0.0]])          # far left of a 65 deg view
    t = head.targets([torch.cat([behind, outside])], [torch.tensor([0, 1])], _geometry([None]), (45, 80))
    assert not t.mask.any() and t.heatmap.sum() == 0
    # a camera looking backwards sees the first one
    back = torch.tensor(_lidar2img(yaw=180.0)[None, None], dtype=torch.float32)
    t = head.targets([behind], [torch.tensor([0])], CameraGeometry(back, torch.tensor([[360.0, 640.0]]), (H, W)),
                     (45, 80))
    assert t.mask.sum() == 1 and math.isclose(float(t.depth[t.mask]), 20.5, abs_tol=1e-3)


def test_losses_are_finite_and_learn(head):
    geometry = _geometry([None, FLIP])
    feats = torch.randn(1, 2, 8, 45, 80)
    boxes, labels = [torch.cat([BOX, BOX + torch.tensor([5.0, -3.0, 0, 0, 0, 0, 0])])], [torch.tensor([2, 0])]
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    history = []
    for _ in range(30):
        losses = head.loss(head(feats), boxes, labels, geometry)
        assert set(losses) == {'loss_img_heatmap', 'loss_img_offset', 'loss_img_depth'}
        total = sum(losses.values())
        assert torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(float(total.detach()))
    assert history[-1] < 0.5 * history[0], history
    # no box at all: finite, and the offset / depth terms are zero
    losses = head.loss(head(feats), [torch.zeros(0, 7)], [torch.zeros(0, dtype=torch.long)], geometry)
    assert float(losses['loss_img_offset']) == 0 and float(losses['loss_img_depth']) == 0
    assert torch.isfinite(losses['loss_img_heatmap'])


def test_peaks_are_local_maxima_over_views_and_classes(head):
    logits = torch.full((1, 2, 3, 5, 6), -10.0)
    logits[0, 1, 2, 3, 4] = 5.0
    logits[0, 1, 2, 3, 5] = 4.0          # next to a higher one: not a peak
    logits[0, 0, 0, 1, 1] = 3.0
    scores, labels, where = head.peaks(logits, 2)
    assert labels.tolist() == [[2, 0]] and where.tolist() == [[[1, 3, 4], [0, 1, 1]]]
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([[5.0, 3.0]])))


def test_each_sample_uses_its_own_image_shape(head):
    """Sample 1's images are 200 pixels wide: the centre at u = 271 is outside them."""
    mats = torch.tensor(np.stack([_lidar2img()])[None], dtype=torch.float32).expand(2, 1, 4, 4)
    geometry = CameraGeometry(mats, torch.tensor([[360.0, 640.0], [360.0, 200.0]]), (H, W))
    t = head.targets([BOX, BOX], [torch.tensor([1]), torch.tensor([1])], geometry, (45, 80))
    assert t.mask[0].sum() == 1 and t.mask[1].sum() == 0


def test_depth_focal_scales_each_views_depth_by_its_focal_length():
    torch.manual_seed(0)
    plain = ImageCentreHead(in_channels=8, num_classes=3, feat_channels=8)
    scaled = ImageCentreHead(in_channels=8, num_classes=3, feat_channels=8, depth_focal=F)
    scaled.load_state_dict(plain.state_dict())
    plain.eval(), scaled.eval()
    feats = torch.randn(1, 3, 8, 4, 6)
    # a plain view (focal F), a flipped one (focal F) and one at half size (focal F / 2)
    geometry = _geometry([None, FLIP, CROP])
    ref, out = plain(feats), scaled(feats, geometry)
    ratio = (out['log_depth'] - ref['log_depth']).exp()
    assert torch.allclose(ratio[0, 0], torch.ones(4, 6), atol=1e-5)
    assert torch.allclose(ratio[0, 1], torch.ones(4, 6), atol=1e-5)
    assert torch.allclose(ratio[0, 2], torch.full((4, 6), 0.5), atol=1e-5)
    assert torch.equal(out['heatmap'], ref['heatmap']) and torch.equal(out['offset'], ref['offset'])
    with pytest.raises(ValueError, match='depth_focal'):
        scaled(feats)
    with pytest.raises(ValueError, match='depth_focal'):
        ImageCentreHead(in_channels=8, num_classes=3, depth_focal=0.0)


def test_depth_targets_around_the_centres(head):
    """depth_radius=1: the 3x3 cells around each centre get its depth; where two regions
    meet the nearer centre's depth wins, and a centre's own cell keeps its own depth."""
    geometry = _geometry([None])
    near, far = BOX, BOX + torch.tensor([20.0, 2.0, 0, 0, 0, 0, 0])     # far: twice as far, the same bearing
    plain = head.targets([torch.cat([near, far])], [torch.tensor([2, 1])], geometry, (H // 8, W // 8))
    torch.testing.assert_close(plain.region_depth, plain.depth)
    assert torch.equal(plain.region_mask, plain.mask)
    wide = ImageCentreHead(in_channels=8, num_classes=3, feat_channels=8, depth_radius=1)
    t = wide.targets([torch.cat([near, far])], [torch.tensor([2, 1])], geometry, (H // 8, W // 8))
    torch.testing.assert_close(t.depth, plain.depth)
    (b0, v0, r0, c0), (b1, v1, r1, c1) = sorted(plain.mask.nonzero().tolist(), key=lambda i: -plain.depth[tuple(i)])
    d_far, d_near = float(plain.depth[0, 0, r0, c0]), float(plain.depth[0, 0, r1, c1])
    assert d_far > d_near and max(abs(r0 - r1), abs(c0 - c1)) <= 2
    expected = torch.full((H // 8, W // 8), float('inf'))
    expected[r0 - 1:r0 + 2, c0 - 1:c0 + 2] = d_far
    cells = expected[r1 - 1:r1 + 2, c1 - 1:c1 + 2]
    expected[r1 - 1:r1 + 2, c1 - 1:c1 + 2] = cells.clamp(max=d_near)
    expected[r0, c0] = d_far                                              # the far centre keeps its own
    assert torch.equal(t.region_mask[0, 0], torch.isfinite(expected))
    torch.testing.assert_close(t.region_depth[0, 0][t.region_mask[0, 0]], expected[torch.isfinite(expected)])
    losses = wide.loss(wide(torch.randn(1, 1, 8, H // 8, W // 8), geometry), [torch.cat([near, far])],
                       [torch.tensor([2, 1])], geometry)
    assert torch.isfinite(losses['loss_img_depth'])
    with pytest.raises(ValueError, match='depth_radius'):
        ImageCentreHead(in_channels=8, num_classes=3, depth_radius=-1)


@pytest.mark.parametrize('aug', [None, FLIP, CROP], ids=['plain', 'flipped', 'cropped'])
def test_ground_term_is_the_depth_at_one_metre_of_descent(aug):
    """A level camera looking along x: the ray through pixel row v descends one metre at
    depth f / (v - cy) (the rig's pinhole, hand-written); above the horizon the term stays
    at its clamp. Image augmentations only move which pixel a cell centre is."""
    from plugin.models.dense_heads.image_centre_head import ground_term
    h, w = H // 8, W // 8
    term = ground_term(_geometry([aug]), (h, w))[0, 0]
    for row, col in [(h - 1, 3), (30, 40), (25, 70)]:
        u, v = (col + 0.5) * 8, (row + 0.5) * 8                      # the cell centre, augmented pixels
        if aug is not None:                                          # back to the rig's pixels
            p = np.linalg.inv(aug) @ np.array([u, v, 1.0, 1.0])
            u, v = p[0] / p[2], p[1] / p[2]
        assert v > CY
        torch.testing.assert_close(term[row, col], torch.tensor(math.log(F / (v - CY))), atol=1e-4, rtol=0)
    if aug is None:                                                   # row 0 is above the horizon
        along = F / math.sqrt((4 - CX) ** 2 + (4 - CY) ** 2 + F ** 2)     # cos of the ray's angle to the axis
        expected = math.log(along) - math.log(math.sin(math.radians(0.5)))
        assert float(term[0, 0]) == pytest.approx(expected, abs=1e-4)


def test_ground_prior_starts_as_the_plain_head_and_learns_its_weight(head):
    geometry = _geometry([None])
    torch.manual_seed(0)
    prior = ImageCentreHead(in_channels=8, num_classes=3, feat_channels=8, ground_prior=True)
    prior.init_weights()
    prior.load_state_dict(dict(head.state_dict(), ground_weight=torch.zeros(())))
    feats = torch.randn(1, 1, 8, H // 8, W // 8)
    torch.testing.assert_close(prior(feats, geometry)['log_depth'], head(feats, geometry)['log_depth'])
    loss = prior.loss(prior(feats, geometry), [BOX], [torch.tensor([2])], geometry)['loss_img_depth']
    loss.backward()
    assert prior.ground_weight.grad is not None and float(prior.ground_weight.grad) != 0
    with pytest.raises(ValueError, match='ground_prior'):
        prior(feats)
