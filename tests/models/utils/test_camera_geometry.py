"""`CameraGeometry`: the batch's camera calibration as tensors, built once by the detector
from the image metas and read by the necks, the head and AQR."""
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch

from plugin.models.utils import CameraGeometry
from tests.helpers.camera_rig import BEV_C, IMG_C, IMG_H, IMG_W, metas
from tests.helpers.repo import REPO


def _metas(batch=2, views=3):
    g = np.random.default_rng(0)
    return [dict(lidar2img=[g.normal(size=(4, 4)) for _ in range(views)], img_shape=(90 + i, 160),
                 pad_shape=(96, 160)) for i in range(batch)]


def test_from_metas_stacks_the_calibration():
    metas = _metas()
    geo = CameraGeometry.from_metas(metas)
    assert geo.lidar2img.shape == (2, 3, 4, 4) and geo.num_views == 3
    np.testing.assert_allclose(geo.lidar2img[1, 2].numpy(), metas[1]['lidar2img'][2], rtol=1e-6)
    assert geo.img_shape.tolist() == [[90.0, 160.0], [91.0, 160.0]]
    assert geo.input_shape == (96, 160)                                   # pad_shape without the batch's
    assert CameraGeometry.from_metas(metas, input_shape=(128, 192)).input_shape == (128, 192)
    uv = torch.tensor([[[[10.0, 89.5], [10.0, 90.5], [-1.0, 5.0]]] * 3] * 2)   # [B, V, N, 2]
    inside = geo.inside(uv)
    assert inside[0, 0].tolist() == [True, False, False] and inside[1, 0].tolist() == [True, True, False]


def test_missing_calibration():
    metas = [dict(img_shape=(90, 160), pad_shape=(96, 160))]
    assert CameraGeometry.from_metas(metas) is None                     # a LiDAR-only batch
    with pytest.raises(ValueError, match="'lidar2img' for all 3 views"):
        CameraGeometry.from_metas(metas, num_views=3)
    with pytest.raises(ValueError, match='has 2 views'):
        CameraGeometry.required(CameraGeometry.from_metas(_metas(views=2)), 3, 'a module')
    with pytest.raises(ValueError, match="a module reads image features and needs"):
        CameraGeometry.required(None, 3, 'a module')


def test_metas_become_tensors_only_in_the_geometry_bundle():
    """No model module reads the calibration metas itself."""
    pattern = re.compile(r"\[['\"](lidar2img|img_shape|pad_shape|input_shape)['\"]\]|get\(['\"]"
                         r"(lidar2img|img_shape|pad_shape|input_shape)")
    hits = []
    for root, _, names in os.walk(osp.join(REPO, 'plugin', 'models')):
        for name in names:
            path = osp.join(root, name)
            if name.endswith('.py') and name != 'camera_geometry.py':
                with open(path) as f:
                    hits += [f'{path}:{i}' for i, line in enumerate(f, 1) if pattern.search(line)]
    assert not hits, hits


def test_the_detector_builds_one_geometry_for_neck_and_head(monkeypatch):
    """extract_feat builds the bundle once, with the padded batch's input shape, and the
    fusion neck and the head receive that same object."""
    from plugin.models.detectors import CmtDetector
    seen = []
    calls = []
    original = CameraGeometry.from_metas.__func__

    def counting(cls, *args, **kwargs):
        calls.append(kwargs.get('input_shape'))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(CameraGeometry, 'from_metas', classmethod(counting))

    class Neck(torch.nn.Module):
        def forward(self, bev, img_feats, geometry):
            seen.append(geometry)
            return bev

    det = CmtDetector.__new__(CmtDetector)
    torch.nn.Module.__init__(det)
    det.fusion_neck, det.triplane = Neck(), None
    monkeypatch.setattr(CmtDetector, 'with_img_backbone', property(lambda self: True))
    monkeypatch.setattr(CmtDetector, 'with_pts_backbone', property(lambda self: True))
    imgs = torch.zeros(2, 3, 3, IMG_H, IMG_W)
    det.extract_img_feat = lambda x, m: [torch.zeros(x.shape[0], IMG_C, IMG_H // 16, IMG_W // 16)]
    det.extract_pts_feat = lambda v, batch_input_metas: [torch.zeros(2, BEV_C, 4, 4)]
    img_feats, bev, planes, geometry = det.extract_feat(dict(imgs=imgs, voxels={}), metas(2))
    assert calls == [(IMG_H, IMG_W)] and seen == [geometry] and geometry.input_shape == (IMG_H, IMG_W)
    assert img_feats.shape[:2] == (2, 3) and planes is None


def test_the_mean_focal_length_is_computed_once_on_the_host():
    from plugin.models.utils.projection import focal_lengths
    geo = CameraGeometry.from_metas(metas(batch=2), device='cpu')
    assert isinstance(geo.mean_focal, float) and geo.mean_focal == pytest.approx(40.0)   # the rig's K
    assert geo.mean_focal == pytest.approx(float(focal_lengths(geo.lidar2img).mean()))
    assert geo.to(dtype=torch.float64).mean_focal == geo.mean_focal
    # the number is the bundle's, not re-read from the tensors (no device synchronisation)
    assert geo._replace(lidar2img=geo.lidar2img * 3).focal() == geo.mean_focal
    bare = CameraGeometry(geo.lidar2img, geo.img_shape, geo.input_shape)
    assert bare.focal() == pytest.approx(40.0)
