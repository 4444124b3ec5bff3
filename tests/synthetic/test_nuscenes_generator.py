"""Invariants of the generated nuScenes-format data set, checked with nuscenes-devkit."""
import json
import os.path as osp
from collections import defaultdict

import cv2
import numpy as np
import pytest

from tests.helpers.repo import GEN_ARGS, REPO, run_tool

CAMS = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT',
        'CAM_BACK_RIGHT')


def test_devkit_tables_and_foreign_keys(nusc):
    for table, key, target in [('sample', 'scene_token', 'scene'),
                               ('sample_data', 'sample_token', 'sample'),
                               ('sample_data', 'ego_pose_token', 'ego_pose'),
                               ('sample_data', 'calibrated_sensor_token', 'calibrated_sensor'),
                               ('calibrated_sensor', 'sensor_token', 'sensor'),
                               ('sample_annotation', 'instance_token', 'instance'),
                               ('sample_annotation', 'visibility_token', 'visibility'),
                               ('instance', 'category_token', 'category'),
                               ('scene', 'log_token', 'log')]:
        for rec in getattr(nusc, table):
            nusc.get(target, rec[key])  # raises KeyError on a dangling token
    for ann in nusc.sample_annotation:
        assert len(ann['attribute_tokens']) <= 1
        for tok in ann['attribute_tokens']:
            assert nusc.get('attribute', tok)['name'] in {
                'vehicle.moving', 'vehicle.stopped', 'vehicle.parked', 'cycle.with_rider',
                'cycle.without_rider', 'pedestrian.sitting_lying_down', 'pedestrian.standing',
                'pedestrian.moving'}
        assert ann['visibility_token'] in {'1', '2', '3', '4'}
        assert isinstance(ann['num_lidar_pts'], int) and ann['num_radar_pts'] == 0
    # the map table with its mask file
    assert all(osp.isfile(osp.join(nusc.dataroot, m['filename'])) for m in nusc.map)


def _chain(nusc, table, first):
    out, tok = [], first
    while tok:
        rec = nusc.get(table, tok)
        if out:
            assert rec['prev'] == out[-1]['token']
        out.append(rec)
        tok = rec['next']
    return out


def test_scene_sample_and_sweep_chains(nusc):
    assert len(nusc.scene) == 5
    for scene in nusc.scene:
        samples = _chain(nusc, 'sample', scene['first_sample_token'])
        assert samples[0]['prev'] == '' and samples[-1]['token'] == scene['last_sample_token']
        assert len(samples) == scene['nbr_samples'] == 4
        assert np.allclose(np.diff([s['timestamp'] for s in samples]), 500_000)  # 2 Hz
        for s in samples:
            assert set(s['data']) == {'LIDAR_TOP', *CAMS}
        lidar = _chain(nusc, 'sample_data', samples[0]['data']['LIDAR_TOP'])
        # keyframes plus 2 sweeps before every keyframe but the first
        assert [sd['is_key_frame'] for sd in lidar] == [True] + [False, False, True] * 3
        assert all(sd['filename'].startswith('sweeps/') != sd['is_key_frame'] for sd in lidar)
        assert np.all(np.diff([sd['timestamp'] for sd in lidar]) > 0)
        for sd in lidar:
            pts = np.fromfile(osp.join(nusc.dataroot, sd['filename']), dtype=np.float32)
            pts = pts.reshape(-1, 5)
            assert len(pts) > 5000 and set(np.unique(pts[:, 4])) <= set(range(32))
        for cam in CAMS:
            sd = nusc.get('sample_data', samples[0]['data'][cam])
            img = cv2.imread(osp.join(nusc.dataroot, sd['filename']))
            assert img.shape == (sd['height'], sd['width'], 3) == (450, 800, 3)


def test_instance_tracks_and_velocities(nusc):
    for inst in nusc.instance:
        anns = _chain(nusc, 'sample_annotation', inst['first_annotation_token'])
        assert len(anns) == inst['nbr_annotations'] and anns[-1]['token'] == inst['last_annotation_token']
        sizes = np.array([a['size'] for a in anns])
        assert np.allclose(sizes, sizes[0])  # a rigid object keeps its size
        vel = nusc.box_velocity(anns[1]['token']) if len(anns) > 1 else np.full(3, np.nan)
        attrs = [nusc.get('attribute', t)['name'] for t in anns[0]['attribute_tokens']]
        if attrs and not np.isnan(vel[0]):
            moving = np.linalg.norm(vel[:2]) > 0.2
            assert attrs[0].endswith('moving') or attrs[0] == 'cycle.with_rider' if moving \
                else not attrs[0].endswith('moving'), (attrs, vel)


def test_ego_moves_and_calibration_is_not_identity(nusc):
    poses = np.array([p['translation'] for p in nusc.ego_pose])
    assert np.ptp(poses[:, :2], axis=0).max() > 1.0
    for cs in nusc.calibrated_sensor:
        assert not np.allclose(cs['rotation'], [1, 0, 0, 0])


def test_all_classes_and_object_counts(nusc):
    from nuscenes.eval.detection.utils import category_to_detection_name
    per_sample = defaultdict(int)
    classes = set()
    for ann in nusc.sample_annotation:
        per_sample[ann['sample_token']] += 1
        classes.add(category_to_detection_name(ann['category_name']))
    assert classes == {'car', 'truck', 'bus', 'trailer', 'construction_vehicle', 'pedestrian',
                       'motorcycle', 'bicycle', 'traffic_cone', 'barrier'}
    assert len(per_sample) == len(nusc.sample)
    assert all(10 <= n <= 25 for n in per_sample.values()), dict(per_sample)


def test_num_lidar_pts_equals_devkit_points_in_box(nusc):
    from nuscenes.utils.data_classes import LidarPointCloud
    from nuscenes.utils.geometry_utils import points_in_box
    checked = 0
    for sample in nusc.sample[::3]:
        sd_token = sample['data']['LIDAR_TOP']
        path, boxes, _ = nusc.get_sample_data(sd_token)  # boxes in the LiDAR frame
        pc = LidarPointCloud.from_file(path)
        for box in boxes:
            expected = nusc.get('sample_annotation', box.token)['num_lidar_pts']
            assert int(points_in_box(box, pc.points[:3]).sum()) == expected
            checked += 1
    assert checked > 20


def test_visible_boxes_are_drawn_in_the_images(nusc):
    from nuscenes.utils.geometry_utils import BoxVisibility, view_points

    from plugin.synthetic.camera_renderer import backgrounds_for
    backgrounds = backgrounds_for((800, 450), 7)
    drawn = 0
    for sample in nusc.sample[::2]:
        for cam in CAMS:
            path, boxes, k = nusc.get_sample_data(sample['data'][cam], box_vis_level=BoxVisibility.ALL)
            img = cv2.imread(path).astype(np.int16)
            for box in boxes:
                ann = nusc.get('sample_annotation', box.token)
                if ann['num_lidar_pts'] < 10 or box.center[2] > 40:
                    continue
                u, v = view_points(box.center[:, None], k, normalize=True)[:2, 0].round().astype(int)
                assert 0 <= u < 800 and 0 <= v < 450
                patch = img[max(v - 2, 0):v + 3, max(u - 2, 0):u + 3]
                bg = backgrounds[cam][max(v - 2, 0):v + 3, max(u - 2, 0):u + 3].astype(np.int16)
                # something other than ground/sky (beyond sensor noise) covers the centre
                assert np.abs(patch - bg).mean() > 12, (cam, ann['token'])
                drawn += 1
    assert drawn > 10


def test_generation_is_deterministic(tmp_path):
    import os

    from plugin.synthetic.nuscenes_generator import GeneratorConfig, generate_scene
    outs = []
    for run in range(2):
        root = str(tmp_path / f'r{run}')
        for sub in ('samples/LIDAR_TOP', 'sweeps/LIDAR_TOP', *[f'samples/{c}' for c in CAMS]):
            os.makedirs(osp.join(root, sub))
        cfg = GeneratorConfig(root=root, num_scenes=2, samples_per_scene=2, sweeps_per_sample=1,
                              image_size=(320, 180), lidar_azimuth_steps=360, seed=3)
        outs.append((generate_scene(cfg, 0, 'scene-0061'), root))
    (tab_a, root_a), (tab_b, root_b) = outs
    assert json.dumps(tab_a, sort_keys=True) == json.dumps(tab_b, sort_keys=True)
    for sd in tab_a['sample_data']:
        with open(osp.join(root_a, sd['filename']), 'rb') as fa, open(osp.join(root_b, sd['filename']), 'rb') as fb:
            assert fa.read() == fb.read()
    cfg.seed = 4
    assert generate_scene(cfg, 0, 'scene-0061')['sample_annotation'] != tab_a['sample_annotation']


def test_class_shapes_fill_their_box_and_show_their_front():
    from plugin.synthetic.object_shapes import CLASS_SPECS, part_boxes
    for name, spec in CLASS_SPECS.items():
        lwh = np.array([spec.size_wlh[1], spec.size_wlh[0], spec.size_wlh[2]])
        parts = part_boxes(spec, lwh)
        lo, hi = (parts[:, :3] - parts[:, 3:]).min(0), (parts[:, :3] + parts[:, 3:]).max(0)
        assert np.allclose(lo, -lwh / 2) and np.allclose(hi, lwh / 2), name
        mirrored = parts * [-1, 1, 1, 1, 1, 1]
        same = {tuple(np.round(p, 6)) for p in parts} == {tuple(np.round(p, 6)) for p in mirrored}
        assert same == (name in ('barrier', 'traffic_cone')), name


@pytest.mark.parametrize('args, message', [
    (['--num-scenes', '1'], '--num-scenes'),
    (['--num-scenes', '12'], 'v1.0-trainval'),
    (['--image-size', '10', '10'], '--image-size'),
    (['--sweeps-per-sample', '12'], '--sweeps-per-sample'),
    (['--min-objects', '30', '--max-objects', '5'], '--min-objects'),
    (['--val-samples-per-scene', '0'], '--val-samples-per-scene'),
])
def test_bad_arguments_get_clear_errors(tmp_path, args, message):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, 'tools/create_synthetic_nuscenes.py', '--out',
                           str(tmp_path / 'x'), *args], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_refuses_to_overwrite(synthetic_root):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, 'tools/create_synthetic_nuscenes.py', '--out',
                           synthetic_root, *GEN_ARGS], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0 and '--overwrite' in proc.stderr


def test_cli_runs(tmp_path):
    tables = []
    for val in (None, 3):
        out = tmp_path / f'val{val}'
        run_tool('tools/create_synthetic_nuscenes.py', '--out', str(out), '--num-scenes', '2',
                 '--samples-per-scene', '1', '--image-size', '160', '90', '--workers', '1',
                 '--lidar-azimuth-steps', '180', '--sweeps-per-sample', '0',
                 *(['--val-samples-per-scene', str(val)] if val else []))
        tables.append({t: json.load(open(out / 'v1.0-mini' / f'{t}.json')) for t in ('scene', 'sample_annotation')})
    plain, long_val = tables
    assert [s['nbr_samples'] for s in plain['scene']] == [1, 1]
    # the val scene is longer; the train scene is the same scene, annotation for annotation
    assert [s['nbr_samples'] for s in long_val['scene']] == [1, 3]

    def train_annotations(tab):
        first = {s['first_sample_token'] for s in tab['scene'][:1]}
        return [a for a in tab['sample_annotation'] if a['sample_token'] in first]
    assert train_annotations(plain) and train_annotations(plain) == train_annotations(long_val)
