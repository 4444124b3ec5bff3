"""The full configs' data pipelines as official CMT: one shared resize/crop/flip draw for the
six views with the official test sizing, GridMask on the raw views, GT-paste with image
patches, and GT-paste switched off after epoch 15 (mmdet3d's DisableObjectSampleHook, resumable)."""
import copy
import os.path as osp
import pickle
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import REPO

import plugin  # noqa: F401
from mmdet3d.registry import TRANSFORMS
from mmdet3d.structures import LiDARInstance3DBoxes, LiDARPoints

R50 = 'configs/cmt/cmt_voxel0100_r50-800x320_8xb4-cyclic-20e_nus-3d.py'
VOV = 'configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'
FULL = [R50, VOV]
K = np.array([[400., 0, 400], [0, 400., 225], [0, 0, 1]])
LIDAR2CAM = np.array([[0., -1, 0, 0], [0, 0, -1, 0.5], [1, 0, 0, 0], [0, 0, 0, 1]])   # looks along LiDAR +x


def _cfg(config):
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, config))


def _step(pipeline, type_name):
    return next(t for t in pipeline if t['type'] == type_name)


def _ramp(h=450, w=800):
    """Each pixel stores its own (u, v)."""
    vv, uu = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([uu, vv, np.zeros_like(uu)], -1)


def _views(n=6, h=450, w=800):
    return dict(img=[_ramp(h, w) for _ in range(n)], cam2img=[K] * n, lidar2cam=[LIDAR2CAM] * n)


def _project(lidar2img, pts):
    hom = np.concatenate([pts, np.ones((len(pts), 1))], 1) @ np.asarray(lidar2img).T
    return hom[:, :2] / hom[:, 2:3]


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
    uv0 = _project(K @ LIDAR2CAM[:3], pts)
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
        uv_plain, uv_flip = _project(out[False]['lidar2img'][v], pts), _project(out[True]['lidar2img'][v], pts)
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
    cfg = _cfg(config)
    step = _step(cfg.test_pipeline, 'MultiViewImageResizeCrop')
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
        cfg = _cfg(config)
        train = [t['type'] for t in cfg.train_dataloader.dataset.dataset.pipeline]
        assert train.index('ObjectSampleWithImages') < train.index('MultiViewImageResizeCrop') \
            == train.index('MultiViewGridMask') - 1
        aug = _step(cfg.train_dataloader.dataset.dataset.pipeline, 'MultiViewImageResizeCrop')
        assert (aug.shared, tuple(aug.bot_pct_lim), aug.flip_prob, tuple(aug.resize_lim), tuple(aug.final_size)) \
            == (True, (0.0, 0.0), 0.5, (0.94, 1.25), tuple(cfg.image_size))
        grid = _step(cfg.train_dataloader.dataset.dataset.pipeline, 'MultiViewGridMask')
        assert grid.fill == cfg.model.data_preprocessor.mean and grid.prob == 0.7
        paste = _step(cfg.train_dataloader.dataset.dataset.pipeline, 'ObjectSampleWithImages')
        assert paste.mixup_rate == 0.5
        assert cfg.custom_hooks == [dict(type='ResumableDisableObjectSampleHook', disable_after_epoch=15)]
        drop = _step(cfg.train_dataloader.dataset.dataset.pipeline, 'ModalityDropout')   # official ModalMask3D
        assert (drop.lidar_prob, drop.camera_prob) == (0.25, 0.25)
        assert 'MultiViewGridMask' not in [t['type'] for t in cfg.test_pipeline]


# ---------------------------------------------------------------- GridMask
def test_grid_mask_blanks_the_cells_between_the_bands(monkeypatch):
    """d = 40 (band 20), bands starting at 0, no rotation: on 320x800 views (mask canvas 480x1200,
    cropped at (80, 200), both multiples of 40) exactly the pixels with y % 40 >= 20 and
    x % 40 >= 20 are blanked (mode 1), a quarter of the view, to the fill value."""
    draws = iter([40, 0, 0, 0] * 2)
    monkeypatch.setattr(np.random, 'randint', lambda *a, **k: next(draws))
    monkeypatch.setattr(np.random, 'rand', lambda *a: 0.0)      # the coin says "mask"
    fill = [103.53, 116.28, 123.675]
    t = TRANSFORMS.build(dict(type='MultiViewGridMask', fill=fill, prob=0.7))
    rng = np.random.default_rng(0)
    imgs = [rng.uniform(0, 255, (320, 800, 3)).astype(np.float32) for _ in range(2)]
    out = t(dict(img=[i.copy() for i in imgs]))
    y, x = np.mgrid[0:320, 0:800]
    blank = (y % 40 >= 20) & (x % 40 >= 20)
    assert blank.sum() == 64000 == 320 * 800 // 4
    for before, after in zip(imgs, out['img']):
        assert after.dtype == np.float32
        np.testing.assert_array_equal(after[blank], np.broadcast_to(np.float32(fill), (64000, 3)))
        np.testing.assert_array_equal(after[~blank], before[~blank])
    # after the data preprocessor's normalisation the blanked pixels are exactly 0, as in official CMT
    normed = (out['img'][0] - np.float32(fill)) / np.float32([57.375, 57.120, 58.395])
    assert (normed[blank] == 0).all()


def test_grid_mask_structure_probability_and_one_coin_per_sample():
    np.random.seed(0)
    t = TRANSFORMS.build(dict(type='MultiViewGridMask', fill=[1.0, 2.0, 3.0], prob=0.7))
    masked_samples, fractions = 0, []
    for _ in range(600):
        imgs = [np.full((32, 80, 3), 200.0, np.float32) for _ in range(6)]
        out = t(dict(img=imgs))['img']
        changed = [bool((o != 200.0).any()) for o in out]
        assert all(changed) or not any(changed)                   # one coin for the six views
        masked_samples += all(changed)
        for o in out if all(changed) else []:
            blank = (o == np.float32([1.0, 2.0, 3.0])).all(-1)
            assert ((o == 200.0).all(-1) | blank).all()           # only the fill value is written
            # blanked = (rows off the row bands) x (columns off the column bands)
            np.testing.assert_array_equal(blank, np.outer(blank.any(1), blank.any(0)))
            fractions.append(blank.mean())
    assert abs(masked_samples / 600 - 0.7) < 0.06
    assert 0.05 < np.mean(fractions) < 0.5
    assert len({f for f in fractions}) > 20                       # a mask per view


# ---------------------------------------------------------------- GT-paste with image patches
def _box(x, y, length=4.0, width=2.0, height=1.6):
    return np.array([x, y, -1.0, length, width, height, 0.0, 0.0, 0.0], np.float32)


@pytest.fixture()
def tiny_paste(tmp_path):
    """A one-object GT database whose source sample has one camera (constant 200) and the
    destination's calibration."""
    pts = np.zeros((20, 5), np.float32)
    pts[:, :3] = np.random.default_rng(0).uniform(-0.5, 0.5, (20, 3))
    pts.tofile(tmp_path / 'obj.bin')
    cv2.imwrite(str(tmp_path / 'src.png'), np.full((450, 800, 3), 200, np.uint8))
    with open(tmp_path / 'db.pkl', 'wb') as f:
        pickle.dump({'car': [dict(name='car', path='obj.bin', image_idx=7, gt_idx=0, box3d_lidar=_box(20.0, 3.0),
                                  num_points_in_gt=20, difficulty=0, group_id=0)]}, f)
    with open(tmp_path / 'infos.pkl', 'wb') as f:
        pickle.dump({'metainfo': {}, 'data_list': [dict(sample_idx=7, images=dict(
            CAM_FRONT=dict(img_path='src.png', cam2img=K.tolist(), lidar2cam=LIDAR2CAM.tolist())))]}, f)

    def build(**kwargs):
        root = str(tmp_path) + '/'
        return TRANSFORMS.build(dict(
            type='ObjectSampleWithImages', img_info_path=root + 'infos.pkl', img_prefix=dict(img=''),
            db_sampler=dict(data_root=root, info_path=root + 'db.pkl', rate=1.0, prepare={}, classes=['car'],
                            sample_groups=dict(car=2),
                            points_loader=dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5,
                                               use_dim=5)), **kwargs))
    return build


def _destination(own_box):
    return dict(img=[np.full((450, 800, 3), 100.0, np.float32)], images=dict(CAM_FRONT={}), cam2img=[K],
                lidar2cam=[LIDAR2CAM], points=LiDARPoints(np.zeros((5, 5), np.float32), points_dim=5),
                gt_bboxes_3d=LiDARInstance3DBoxes(own_box[None], box_dim=9), gt_labels_3d=np.array([0]))


def _rect(box, img_hw=(450, 800)):
    corners = LiDARInstance3DBoxes(box[None], box_dim=9).corners.numpy()[0]
    uv = _project(K @ LIDAR2CAM[:3], corners).astype(int)     # all corners in front here
    x0, y0 = np.clip(uv.min(0), 0, [img_hw[1] - 1, img_hw[0] - 1])
    x1, y1 = np.clip(uv.max(0), 0, [img_hw[1] - 1, img_hw[0] - 1])
    mask = np.zeros(img_hw, bool)
    mask[y0:y1, x0:x1] = True
    return mask


@pytest.mark.parametrize('depth_order', [True, False])
def test_pasted_patch_blends_in_its_box_behind_a_nearer_own_object(tiny_paste, depth_order):
    """Destination view = 100, source patch = 200, mixup 0.5. A pasted car 20 m ahead, partly behind
    the sample's own car at 10 m: far to near (official), the own car's pixels are put back on top
    (0.5 * 150 + 0.5 * 100 = 125 where both overlap); in box order the patch stays on top."""
    np.random.seed(0)
    t = tiny_paste(depth_order=depth_order)
    own = _box(10.0, 0.0)
    out = t(_destination(own))
    assert len(out['gt_bboxes_3d']) == 2 and len(out['points']) == 5 + 20
    np.testing.assert_allclose(out['gt_bboxes_3d'].numpy()[1], _box(20.0, 3.0))
    near, far = _rect(own), _rect(_box(20.0, 3.0))
    assert (near & far).sum() > 0 and (far & ~near).sum() > 0
    img = out['img'][0]
    assert (img[~near & ~far] == 100.0).all()                   # nothing outside the boxes
    assert (img[near & ~far] == 100.0).all()                    # an own object alone is unchanged
    assert (img[far & ~near] == 150.0).all()                    # 0.5 * 100 + 0.5 * 200
    assert (img[near & far] == (125.0 if depth_order else 150.0)).all()


def test_mixup_one_pastes_and_disabled_does_nothing(tiny_paste):
    np.random.seed(0)
    t = tiny_paste(mixup_rate=1.0)
    own = _box(10.0, -6.0)                                      # out of the pasted car's way
    out = t(_destination(own))
    far = _rect(_box(20.0, 3.0))
    assert (out['img'][0][far] == 200.0).all() and (out['img'][0][~far] == 100.0).all()
    t.disabled = True
    dest = _destination(own)
    out = t(dest)
    assert len(out['gt_bboxes_3d']) == 1 and (out['img'][0] == 100.0).all()


def test_paste_needs_the_camera_views(tiny_paste):
    res = _destination(_box(10.0, 0.0))
    res.pop('images')
    with pytest.raises(KeyError, match='images'):
        tiny_paste()(res)
    with pytest.raises(ValueError, match='mixup_rate'):
        tiny_paste(mixup_rate=0.0)


def _paste_setup(config, synthetic_root):
    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules
    from mmengine.dataset import Compose
    register_all_modules(init_default_scope=True)
    cfg = _cfg(config)
    root = synthetic_root + '/'
    pipeline = cfg.train_dataloader.dataset.dataset.pipeline
    paste = copy.deepcopy(_step(pipeline, 'ObjectSampleWithImages'))
    paste['db_sampler'].update(data_root=root, info_path=root + 'nuscenes_dbinfos_train.pkl')
    paste.update(img_info_path=root + 'nuscenes_infos_train.pkl')
    head = pipeline[:[t['type'] for t in pipeline].index('ObjectSampleWithImages')]
    ds = DATASETS.build(dict(type='NuScenesDataset', data_root=root, ann_file='nuscenes_infos_train.pkl',
                             metainfo=dict(classes=cfg.class_names, version='v1.0-mini'),
                             data_prefix=cfg.train_dataloader.dataset.dataset.data_prefix,
                             modality=dict(use_lidar=True, use_camera=True), test_mode=False,
                             box_type_3d='LiDAR', pipeline=[]))
    return cfg, paste, lambda index: Compose(head)(copy.deepcopy(ds.get_data_info(index)))


def test_pasted_objects_change_pixels_only_inside_their_boxes(synthetic_root):
    """On the generated set (converted by tools/create_data.py): with mixup 0.5 every changed
    pixel lies in the projected box of a pasted object, and where such a box overlaps no other
    box the result is exactly the mean of the view and of the mixup-1 result (the patch)."""
    from plugin.datasets.transforms import lidar2img_matrices
    cfg, paste, sample = _paste_setup(R50, synthetic_root)
    changed_total, isolated_checked = 0, 0
    for index in range(4):
        base = sample(index)
        outs = {}
        for rate in (0.5, 1.0):
            np.random.seed(index)
            t = TRANSFORMS.build(dict(paste, mixup_rate=rate))
            np.random.seed(100 + index)
            outs[rate] = t(copy.deepcopy(base))
        num_own = len(base['gt_bboxes_3d'])
        out = outs[0.5]
        assert len(out['gt_bboxes_3d']) > num_own
        np.testing.assert_array_equal(out['gt_bboxes_3d'].numpy(), outs[1.0]['gt_bboxes_3d'].numpy())
        corners = out['gt_bboxes_3d'].corners.numpy()
        lidar2img = lidar2img_matrices(out)
        for v, (before, after, pasted) in enumerate(zip(base['img'], out['img'], outs[1.0]['img'])):
            rects = []
            for c in corners:
                hom = np.concatenate([c, np.ones((8, 1))], 1) @ lidar2img[v].T
                if (hom[:, 2] <= 0).any():
                    rects.append(None)
                    continue
                uv = (hom[:, :2] / hom[:, 2:3]).astype(int)
                x0, y0 = np.clip(uv.min(0), 0, [before.shape[1] - 1, before.shape[0] - 1])
                x1, y1 = np.clip(uv.max(0), 0, [before.shape[1] - 1, before.shape[0] - 1])
                mask = np.zeros(before.shape[:2], bool)
                if x1 - x0 > 1 and y1 - y0 > 1:
                    mask[y0:y1, x0:x1] = True
                rects.append(mask)
            none = np.zeros(before.shape[:2], bool)
            rects = [none if r is None else r for r in rects]
            inside_pasted = np.any(rects[num_own:], axis=0) if len(rects) > num_own else none
            changed = (after != before).any(-1)
            assert not (changed & ~inside_pasted).any(), f'view {v}: pixels changed outside the pasted boxes'
            changed_total += int(changed.sum())
            for i in range(num_own, len(rects)):
                alone = rects[i] & ~np.any([r for j, r in enumerate(rects) if j != i] or [none], axis=0)
                if alone.any() and (pasted[alone] != before[alone]).any():
                    np.testing.assert_allclose(after[alone], 0.5 * before[alone] + 0.5 * pasted[alone], atol=1e-3)
                    isolated_checked += 1
    assert changed_total > 1000 and isolated_checked > 0


# ---------------------------------------------------------------- GT-paste fade
def test_disable_object_sample_hook_reaches_the_paste_inside_cbgs(synthetic_root):
    """mmdet3d's hook unwraps CBGSDataset (not a BaseDataset) and finds ObjectSampleWithImages
    (an ObjectSample): pasting stops from epoch 15 on (the 16th of 20), and also when a run
    resumes at a later epoch (where mmdet3d's own hook would go on pasting)."""
    from mmdet3d.engine.hooks import DisableObjectSampleHook
    from mmdet3d.registry import DATASETS, HOOKS
    from mmengine.logging import MMLogger
    from torch.utils.data import DataLoader
    cfg, paste, _ = _paste_setup(R50, synthetic_root)
    root = synthetic_root + '/'
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.dataset.update(data_root=root, metainfo=dict(classes=cfg.class_names, version='v1.0-mini'))
    for i, t in enumerate(ds_cfg.dataset.pipeline):
        if t['type'] == 'ObjectSampleWithImages':
            ds_cfg.dataset.pipeline[i] = paste
    dataset = DATASETS.build(ds_cfg)
    assert type(dataset).__name__ == 'CBGSDataset'
    transform = next(t for t in dataset.dataset.pipeline.transforms if type(t).__name__ == 'ObjectSampleWithImages')
    hook = HOOKS.build(cfg.custom_hooks[0])
    assert isinstance(hook, DisableObjectSampleHook)
    runner = SimpleNamespace(train_dataloader=DataLoader(dataset, batch_size=1, num_workers=0), model=object(),
                             logger=MMLogger.get_instance('test_official_pipeline'))
    counts = []
    for epoch in (0, 14, 15, 16):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        info = dataset.dataset.get_data_info(0)
        np.random.seed(epoch)
        results = dataset.dataset.pipeline.transforms[0](copy.deepcopy(info))
        for t in dataset.dataset.pipeline.transforms[1:]:
            before = len(results['gt_bboxes_3d']) if t is transform else None
            results = t(results)
            if t is transform:
                counts.append(len(results['gt_bboxes_3d']) - before)
                break
    assert transform.disabled
    assert counts[0] > 0 and counts[1] > 0 and counts[2:] == [0, 0]
    runner.epoch = 17                                   # a run resumed from the epoch-17 checkpoint
    transform.disabled = False
    DisableObjectSampleHook(disable_after_epoch=15).before_train_epoch(runner)
    assert not transform.disabled
    HOOKS.build(cfg.custom_hooks[0]).before_train_epoch(runner)
    assert transform.disabled
