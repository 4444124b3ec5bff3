"""`MultiViewImageResizeCrop` as official CMT's ResizeCropFlipImage: one shared draw for
the six views, flips that lidar2img follows, the official test sizing; the full
configs use it with the official settings."""
import copy

import cv2
import numpy as np
import pytest

import plugin  # noqa: F401
from mmdet3d.registry import TRANSFORMS
from tests.helpers.official_pipeline import LIDAR2CAM, R50, K, load_config, pipeline_step, project_pinhole

VOV = 'configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'
FULL = [R50, VOV]


def _ramp(h=450, w=800):
    """Each pixel stores its own (u, v)."""
    vv, uu = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([uu, vv, np.zeros_like(uu)], -1)


def _views(n=6, h=450, w=800):
    return dict(img=[_ramp(h, w) for _ in range(n)], cam2img=[K] * n, lidar2cam=[LIDAR2CAM] * n)


# ---------------------------------------------------------------- resize / crop / flip
def test_one_draw_shared_by_all_six_views():
    shared = TRANSFORMS.build(dict(type='MultiViewImageResizeCrop', final_size=(400, 160), resize_lim=(0.94, 1.25),
                                   shared=True, bot_pct_lim=(0.0, 0.0), flip_prob=0.5))
    per_view = TRANSFORMS.build(dict(type='MultiViewImageResizeCrop', final_size=(400, 160),
                                     resize_lim=(0.94, 1.25), flip_prob=0.5))
    flips = []
    for seed in range(12):
        np.random.seed(seed)
        out = shared(_views())
        mats = out['img_aug_matrix']
        assert mats.shape == (6, 4, 4)
        np.testing.assert_array_equal(mats, np.broadcast_to(mats[0], mats.shape))
        for img in out['img'][1:]:
            np.testing.assert_array_equal(img, out['img'][0])      # same input, same draw: same pixels
        scale = abs(mats[0, 0, 0])
        assert 0.5 * 0.94 <= scale <= 0.5 * 1.25
        # bottom-aligned (bot_pct_lim (0, 0)): the crop's lower edge is the resized image's
        assert mats[0, 1, 2] == -(int(450 * scale + 1e-6) - 160)
        flips.append(mats[0, 0, 0] < 0)
        np.random.seed(seed)
        assert len({m.tobytes() for m in per_view(_views())['img_aug_matrix']}) > 1   # the default: per view
    assert 3 <= sum(flips) <= 9                                   # 50% flip


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_flip_mirrors_pixels_and_lidar2img_follows(seed):
    cfg = dict(type='MultiViewImageResizeCrop', final_size=(400, 160), resize_lim=(0.94, 1.25), shared=True,
               bot_pct_lim=(0.0, 0.0))
    pipes = {flip: [TRANSFORMS.build(dict(cfg, flip_prob=float(flip))), TRANSFORMS.build(dict(type='ComputeLidar2Img'))]
             for flip in (False, True)}
    pts = np.array([[12.0, 1.5, 0.3], [20.0, -4.0, 1.0], [8.0, 2.0, -0.5], [30.0, 6.0, 0.0]])
    uv0 = project_pinhole(K @ LIDAR2CAM[:3], pts)
    # a marker of 9x9 pixels at each point's pixel in the original views
    views = _views()
    for img in views['img']:
        for i, (u, v) in enumerate(uv0.astype(int)):
            img[v - 4:v + 5, u - 4:u + 5, 2] = 1000 + i
    out = {}
    for flip, pipe in pipes.items():
        np.random.seed(seed)          # the flip coin is drawn last: both runs share scale and crop
        res = copy.deepcopy(views)
        for t in pipe:
            res = t(res)
        out[flip] = res
    for v in range(6):
        np.testing.assert_array_equal(out[True]['img'][v], out[False]['img'][v][:, ::-1])
        uv_plain, uv_flip = project_pinhole(out[False]['lidar2img'][v], pts), project_pinhole(out[True]['lidar2img'][v], pts)
        np.testing.assert_allclose(uv_flip[:, 0], 400 - uv_plain[:, 0], atol=1e-6)
        np.testing.assert_allclose(uv_flip[:, 1], uv_plain[:, 1], atol=1e-6)
        # the projected point lands on its own marker in the flipped view
        for i, (u, v_) in enumerate(uv_flip):
            if 0 <= u < 400 and 0 <= v_ < 160:
                assert out[True]['img'][v][int(v_), int(u), 2] == pytest.approx(1000 + i, abs=1.0)
    # and every pixel holds the original pixel the matrix sends there (pixel i covers [i, i+1));
    # < 1 px: the matrix scales by the drawn factor, cv2 by the rounded size ratio
    m = out[True]['img_aug_matrix'][0]
    img = out[True]['img'][0]
    rows, cols = np.mgrid[4:150, 4:396]
    src = img[rows, cols]
    keep = src[..., 2] == 0                                        # off the markers
    dst_u = m[0, 0] * (src[..., 0] + 0.5) + m[0, 2]
    dst_v = m[1, 1] * (src[..., 1] + 0.5) + m[1, 2]
    assert np.abs(dst_u - (cols + 0.5))[keep].max() < 1.0
    assert np.abs(dst_v - (rows + 0.5))[keep].max() < 1.0


@pytest.mark.parametrize('config, scale, shift_y', [(R50, 0.5, -130), (VOV, 1.0, -260)])
def test_official_test_sizing_fits_exactly(config, scale, shift_y):
    """Official test branch: scale max(fH / 900, fW / 1600), 1600 wide -> exactly the output
    width (no side cut), lower fH rows of the resized height."""
    cfg = load_config(config)
    step = pipeline_step(cfg.test_pipeline, 'MultiViewImageResizeCrop')
    w, h = cfg.image_size
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (900, 1600, 3)).astype(np.float32)
    out = TRANSFORMS.build(step)(dict(img=[img, img.copy()]))
    expected = np.eye(4)
    expected[0, 0] = expected[1, 1] = scale
    expected[1, 2] = shift_y
    np.testing.assert_array_equal(out['img_aug_matrix'], np.stack([expected] * 2))
    resized = cv2.resize(img, (int(1600 * scale), int(900 * scale)), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out['img'][0], resized[-shift_y:])
    assert out['img'][0].shape == (h, w, 3) and out['img_shape'] == (h, w)
    # the former test sizing (mean relative scale 1.095) cut 1600 * 1.095 - 1600 = 152 px off the sides
    mean = TRANSFORMS.build(dict(type='MultiViewImageResizeCrop', final_size=(1600, 640), resize_lim=(0.94, 1.25),
                                 test_mode=True))(dict(img=[img]))
    assert mean['img_aug_matrix'][0, 0, 2] == -76


def test_full_configs_use_the_official_image_augmentation():
    for config in FULL:
        cfg = load_config(config)
        train = [t['type'] for t in cfg.train_dataloader.dataset.dataset.pipeline]
        assert train.index('ObjectSampleWithImages') < train.index('MultiViewImageResizeCrop') \
            == train.index('MultiViewGridMask') - 1
        aug = pipeline_step(cfg.train_dataloader.dataset.dataset.pipeline, 'MultiViewImageResizeCrop')
        assert (aug.shared, tuple(aug.bot_pct_lim), aug.flip_prob, tuple(aug.resize_lim), tuple(aug.final_size)) \
            == (True, (0.0, 0.0), 0.5, (0.94, 1.25), tuple(cfg.image_size))
        grid = pipeline_step(cfg.train_dataloader.dataset.dataset.pipeline, 'MultiViewGridMask')
        assert grid.fill == cfg.model.data_preprocessor.mean and grid.prob == 0.7
        paste = pipeline_step(cfg.train_dataloader.dataset.dataset.pipeline, 'ObjectSampleWithImages')
        assert paste.mixup_rate == 0.5
        assert cfg.custom_hooks == [dict(type='ResumableDisableObjectSampleHook', disable_after_epoch=15)]
        drop = pipeline_step(cfg.train_dataloader.dataset.dataset.pipeline, 'ModalityDropout')   # official ModalMask3D
        assert (drop.lidar_prob, drop.camera_prob) == (0.25, 0.25)
        assert 'MultiViewGridMask' not in [t['type'] for t in cfg.test_pipeline]
