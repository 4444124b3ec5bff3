"""`TriplaneNeck`: identity on BEV at init, fuses the xy plane, runs with one modality and
follows the camera pose."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

import plugin  # noqa: F401
from mmdet3d.registry import MODELS
from tests.helpers.camera_rig import IMG_C, IMG_H, IMG_W, STRIDE, geometry

PC_RANGE = [-20.0, -20.0, -3.0, 20.0, 20.0, 3.0]


def neck(**kw):
    init_default_scope('mmdet3d')
    cfg = dict(type='TriplaneNeck', pc_range=PC_RANGE, bev_channels=16, img_channels=IMG_C, bev_tokens=(3, 3),
               cam_tokens=(2, 2), generator=dict(type='TriplaneGenerator', context_dim=12, num_layers=1,
                                                 internal_resolution=4, triplane_resolution=8, d_model=32,
                                                 head_dim=8, output_channels=6, ffn_channels=32,
                                                 upsampler=dict(type='TriplaneUpsampler', mid_channels=8)))
    cfg.update(kw)
    mod = MODELS.build(cfg)
    mod.init_weights()
    return mod


def test_neck_is_identity_on_bev_at_init_and_fuses_the_xy_plane():
    m = neck()
    bev = torch.randn(2, 16, 10, 12)
    img = torch.randn(2, 3, IMG_C, IMG_H // STRIDE, IMG_W // STRIDE)
    out, planes = m(bev, img, geometry(2))
    assert planes.shape == (2, 3, 6, 8, 8) and torch.equal(out, bev)
    assert m.context(bev, img, geometry(2)).shape == (2, 9 + 3 * 4, 12)
    with torch.no_grad():   # an identity 1x1 conv on the first 6 channels: the XY plane, resized
        m.bev_fuse.weight.zero_()
        m.bev_fuse.weight[:6, :, 0, 0] = torch.eye(6)
    out, planes = m(bev, img, geometry(2))
    xy = F.interpolate(planes[:, 0], size=(10, 12), mode='bilinear', align_corners=False)
    torch.testing.assert_close(out[:, :6] - bev[:, :6], xy)
    torch.testing.assert_close(out[:, 6:], bev[:, 6:])


def test_neck_runs_with_one_modality_and_blank_cameras():
    lidar_only = neck(img_channels=None)
    bev = torch.randn(1, 16, 10, 12)
    out, planes = lidar_only(bev, None)
    assert planes.shape == (1, 3, 6, 8, 8)
    camera_only = neck(bev_channels=None, fuse_bev=False)
    blank = torch.zeros(1, 3, IMG_C, IMG_H // STRIDE, IMG_W // STRIDE)
    out, planes = camera_only(None, blank, geometry(1))
    assert out is None and torch.isfinite(planes).all()
    with pytest.raises(ValueError, match='fuse_bev'):
        neck(bev_channels=None)
    with pytest.raises(ValueError, match="TriplaneNeck reads image features and needs the batch's camera geometry"):
        neck()(bev, blank)


def test_camera_context_follows_the_camera_pose():
    """Same image features, cameras turned: the camera tokens change, the BEV ones do not."""
    m = neck()
    bev = torch.randn(1, 16, 10, 12)
    img = torch.randn(1, 3, IMG_C, IMG_H // STRIDE, IMG_W // STRIDE)
    a = m.context(bev, img, geometry(1))
    b = m.context(bev, img, geometry(1, yaws=(30.0, 120.0, 210.0)))
    torch.testing.assert_close(a[:, :9], b[:, :9])
    assert (a[:, 9:] - b[:, 9:]).abs().max() > 1e-4
