"""`ObjectSampleWithImages`: pasted objects bring their image patches, blended far to
near, changing pixels only inside their boxes."""
import copy
import pickle

import cv2
import numpy as np
import pytest

import plugin  # noqa: F401
from mmdet3d.registry import TRANSFORMS
from mmdet3d.structures import LiDARInstance3DBoxes, LiDARPoints
from tests.helpers.official_pipeline import LIDAR2CAM, R50, K, paste_setup, project_pinhole


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
    uv = project_pinhole(K @ LIDAR2CAM[:3], corners).astype(int)     # all corners in front here
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


def test_pasted_objects_change_pixels_only_inside_their_boxes(synthetic_root):
    """On the generated set (converted by tools/create_data.py): with mixup 0.5 every changed
    pixel lies in the projected box of a pasted object, and where such a box overlaps no other
    box the result is exactly the mean of the view and of the mixup-1 result (the patch)."""
    from plugin.datasets.transforms import lidar2img_matrices
    cfg, paste, sample = paste_setup(R50, synthetic_root)
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
