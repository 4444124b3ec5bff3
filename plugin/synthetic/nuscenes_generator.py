"""Writes a synthetic data set in the exact nuScenes on-disk format.

Layout (same as nuScenes): `<root>/<version>/*.json` (the 13 tables the devkit loads),
`<root>/samples/<channel>/...` keyframes, `<root>/sweeps/LIDAR_TOP/...` intermediate LiDAR
sweeps and `<root>/maps/*.png` map masks. mmdet3d's converter, NuScenesDataset and the
devkit's DetectionEval read it unchanged.

Splits: the converter and DetectionEval select scenes by the devkit's hard-coded scene
names (`nuscenes.utils.splits`), so scenes are named from those lists: `v1.0-mini` takes
names from mini_train/mini_val (at most 8 + 2 scenes), `v1.0-trainval` from train/val.
A scene may hold any number of samples. No radar is simulated (num_radar_pts = 0).
"""
import hashlib
import json
import os
import os.path as osp
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from pyquaternion import Quaternion

from .camera_renderer import backgrounds_for, make_noise_bank, render_camera
from .lidar_simulator import cast_lidar
from .object_shapes import CLASS_SPECS, DETECTION_CLASSES
from .scene_layout import make_clutter, make_scene
from .sensor_rig import build_rig
from .world_boxes import world_boxes_at

KEYFRAME_INTERVAL_US = 500_000          # samples at 2 Hz
ANNOTATION_RANGE = 70.0                 # m; objects are placed to stay within it
LOCATIONS = ('singapore-onenorth', 'boston-seaport', 'singapore-queenstown',
             'singapore-hollandvillage')
ATTRIBUTES = ('vehicle.moving', 'vehicle.stopped', 'vehicle.parked', 'cycle.with_rider',
              'cycle.without_rider', 'pedestrian.sitting_lying_down', 'pedestrian.standing',
              'pedestrian.moving')
VISIBILITY = (('1', 'v0-40'), ('2', 'v40-60'), ('3', 'v60-80'), ('4', 'v80-100'))
# categories of nuScenes that have no detection class still exist in the table
EXTRA_CATEGORIES = ('animal', 'human.pedestrian.personal_mobility', 'human.pedestrian.stroller',
                    'human.pedestrian.wheelchair', 'movable_object.debris',
                    'movable_object.pushable_pullable', 'static_object.bicycle_rack',
                    'vehicle.emergency.ambulance', 'vehicle.emergency.police')
TABLES = ('attribute', 'calibrated_sensor', 'category', 'ego_pose', 'instance', 'log', 'map',
          'sample', 'sample_annotation', 'sample_data', 'scene', 'sensor', 'visibility')


@dataclass
class GeneratorConfig:
    root: str
    version: str = 'v1.0-mini'
    num_scenes: int = 10
    samples_per_scene: int = 10
    val_samples_per_scene: Optional[int] = None   # None: samples_per_scene
    sweeps_per_sample: int = 9
    image_size: Tuple[int, int] = (1600, 900)
    objects_per_sample: Tuple[int, int] = (5, 40)
    lidar_azimuth_steps: int = 1084
    seed: int = 0
    workers: int = 2


def token(*parts) -> str:
    """Deterministic 32-hex-digit token, like nuScenes'."""
    return hashlib.md5('/'.join(map(str, parts)).encode()).hexdigest()


def scene_names(version: str, num_scenes: int) -> List[Tuple[str, str]]:
    """(scene name, split) pairs taken from the devkit's split lists (~20% val, >= 1 each)."""
    from nuscenes.utils.splits import create_splits_scenes
    splits = create_splits_scenes()
    train_key, val_key = {'v1.0-mini': ('mini_train', 'mini_val'),
                          'v1.0-trainval': ('train', 'val')}[version]
    num_val = max(1, round(num_scenes * 0.2))
    num_train = num_scenes - num_val
    if num_train < 1 or num_train > len(splits[train_key]) or num_val > len(splits[val_key]):
        raise ValueError(
            f'--num-scenes {num_scenes} does not fit {version}: it needs at least one train and '
            f'one val scene and offers {len(splits[train_key])} + {len(splits[val_key])} names '
            f'(use v1.0-trainval for more scenes)')
    return ([(n, 'train') for n in splits[train_key][:num_train]]
            + [(n, 'val') for n in splits[val_key][:num_val]])


def _pose_matrix(rotation: Quaternion, translation) -> np.ndarray:
    mat = np.eye(4)
    mat[:3, :3] = rotation.rotation_matrix
    mat[:3, 3] = translation
    return mat


def _points_in_boxes(points_global: np.ndarray, centers, lwh, yaws) -> np.ndarray:
    """Number of points inside each oriented box, counted by the devkit's own points_in_box."""
    from nuscenes.utils.data_classes import Box
    from nuscenes.utils.geometry_utils import points_in_box
    return np.array([int(points_in_box(Box(c, [size[1], size[0], size[2]],
                                           Quaternion(axis=[0, 0, 1], angle=yaw)),
                                       points_global.T).sum())
                     for c, size, yaw in zip(centers, lwh, yaws)], dtype=np.int64)


def _visibility_token(hits: int, reachable: int) -> str:
    frac = hits / reachable if reachable > 0 else 0.0
    return '1' if frac < 0.4 else '2' if frac < 0.6 else '3' if frac < 0.8 else '4'


def generate_scene(cfg: GeneratorConfig, scene_idx: int, name: str,
                   split_rank: int = 0, split: str = 'train') -> Dict[str, list]:
    """Simulates one scene, writes its point clouds and images, returns its table rows.

    `split_rank` (the scene's index within its split) rotates which classes the scene
    places first, so that consecutive scenes of a split together hold all 10 classes;
    a val scene (`split`) has `val_samples_per_scene` samples when that is set.
    """
    rng = np.random.default_rng([cfg.seed, scene_idx])
    sensors = build_rig(cfg.image_size)
    lidar, cams = sensors[0], sensors[1:]
    backgrounds = backgrounds_for(cfg.image_size, cfg.seed)
    noise = make_noise_bank(cfg.image_size[1], cfg.image_size[0], rng)
    n_samples = cfg.samples_per_scene
    if split == 'val' and cfg.val_samples_per_scene is not None:
        n_samples = cfg.val_samples_per_scene
    duration = (n_samples - 1) * KEYFRAME_INTERVAL_US / 1e6
    num_objects = int(rng.integers(cfg.objects_per_sample[0], cfg.objects_per_sample[1] + 1))
    step = max(1, cfg.objects_per_sample[0])
    first = [DETECTION_CLASSES[(split_rank * step + j) % len(DETECTION_CLASSES)]
             for j in range(min(num_objects, len(DETECTION_CLASSES)))]
    ego, tracks = make_scene(rng, duration, num_objects, max_range=ANNOTATION_RANGE - 5.0,
                             first_classes=first)
    clutter = make_clutter(rng, ego, duration, tracks)
    t0 = 1_530_000_000_000_000 + scene_idx * 3_600_000_000   # one hour apart, microseconds
    location = LOCATIONS[scene_idx % len(LOCATIONS)]
    log_name = f'n{scene_idx:03d}-2018-07-{1 + scene_idx % 28:02d}-10-00-00+0800'
    tab: Dict[str, list] = {t: [] for t in TABLES}
    log_tok = token(cfg.seed, 'log', scene_idx)
    tab['log'].append(dict(token=log_tok, logfile=log_name, vehicle='n008',
                           date_captured=f'2018-07-{1 + scene_idx % 28:02d}', location=location))
    calib_tok = {}
    for s in sensors:
        calib_tok[s.channel] = token(cfg.seed, 'calib', scene_idx, s.channel)
        tab['calibrated_sensor'].append(dict(
            token=calib_tok[s.channel], sensor_token=token('sensor', s.channel),
            translation=s.translation.tolist(), rotation=list(s.rotation.elements),
            camera_intrinsic=s.intrinsic.tolist() if s.intrinsic is not None else []))

    sample_toks = [token(cfg.seed, 'sample', scene_idx, k) for k in range(n_samples)]
    last_sd: Dict[str, dict] = {}
    inst_anns: Dict[int, List[dict]] = {i: [] for i in range(len(tracks))}

    def add_sample_data(channel, t_us, sample_tok, key, fileformat, filename, w=0, h=0, pose=None):
        sd_tok = token(cfg.seed, 'sd', scene_idx, channel, t_us)
        ego_tok = token(cfg.seed, 'ego', scene_idx, channel, t_us)
        x, y, yaw = pose
        tab['ego_pose'].append(dict(token=ego_tok, timestamp=t_us, translation=[x, y, 0.0],
                                    rotation=list(Quaternion(axis=[0, 0, 1], angle=yaw).elements)))
        rec = dict(token=sd_tok, sample_token=sample_tok, ego_pose_token=ego_tok,
                   calibrated_sensor_token=calib_tok[channel], timestamp=t_us,
                   fileformat=fileformat, is_key_frame=key, height=h, width=w,
                   filename=filename, prev='', next='')
        if channel in last_sd:
            rec['prev'] = last_sd[channel]['token']
            last_sd[channel]['next'] = sd_tok
        last_sd[channel] = rec
        tab['sample_data'].append(rec)

    def ego2global_at(t_s):
        x, y, yaw = ego.pose(t_s)
        return _pose_matrix(Quaternion(axis=[0, 0, 1], angle=yaw), [x, y, 0.0]), (x, y, yaw)

    for k in range(n_samples):
        # LiDAR sweeps since the previous keyframe (none before the first), then the keyframe
        frames = [(k - 1) * KEYFRAME_INTERVAL_US + j * KEYFRAME_INTERVAL_US // (cfg.sweeps_per_sample + 1)
                  for j in range(1, cfg.sweeps_per_sample + 1)] if k > 0 else []
        frames.append(k * KEYFRAME_INTERVAL_US)
        for rel_us in frames:
            key = rel_us == k * KEYFRAME_INTERVAL_US
            t_s, t_us = rel_us / 1e6, t0 + rel_us
            boxes = world_boxes_at(tracks, clutter, t_s)
            ego2global, pose = ego2global_at(t_s)
            sweep = cast_lidar(boxes, len(tracks), ego2global @ lidar.sensor2ego, rng,
                               num_azimuth=cfg.lidar_azimuth_steps)
            folder = 'samples' if key else 'sweeps'
            fname = f'{folder}/LIDAR_TOP/{log_name}__LIDAR_TOP__{t_us}.pcd.bin'
            sweep.points.tofile(osp.join(cfg.root, fname))
            add_sample_data('LIDAR_TOP', t_us, sample_toks[k], key, 'pcd', fname, pose=pose)
        # keyframe: cameras and annotations
        for cam in cams:
            img = render_camera(boxes, cam, ego2global, backgrounds[cam.channel], noise, rng)
            fname = f'samples/{cam.channel}/{log_name}__{cam.channel}__{t_us}.jpg'
            cv2.imwrite(osp.join(cfg.root, fname), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            add_sample_data(cam.channel, t_us, sample_toks[k], True, 'jpg', fname,
                            cam.width, cam.height, pose=pose)
        tab['sample'].append(dict(token=sample_toks[k], timestamp=t_us,
                                  prev=sample_toks[k - 1] if k > 0 else '',
                                  next=sample_toks[k + 1] if k + 1 < n_samples else '',
                                  scene_token=token(cfg.seed, 'scene', scene_idx)))
        pts = sweep.points[:, :3].astype(np.float64) @ (ego2global @ lidar.sensor2ego)[:3, :3].T \
            + (ego2global @ lidar.sensor2ego)[:3, 3]
        centers = np.array([tr.center(t_s) for tr in tracks]).reshape(-1, 3)
        lwh = np.array([tr.lwh for tr in tracks]).reshape(-1, 3)
        yaws = np.array([tr.yaw for tr in tracks])
        n_pts = _points_in_boxes(pts, centers, lwh, yaws)
        for i, tr in enumerate(tracks):
            if np.hypot(*(centers[i, :2] - pose[:2])) > ANNOTATION_RANGE:
                continue
            ann = dict(token=token(cfg.seed, 'ann', scene_idx, i, k), sample_token=sample_toks[k],
                       instance_token=token(cfg.seed, 'instance', scene_idx, i),
                       visibility_token=_visibility_token(sweep.hits[i], sweep.reachable[i]),
                       attribute_tokens=[token('attribute', tr.attribute)] if tr.attribute else [],
                       translation=centers[i].tolist(),
                       size=[float(tr.lwh[1]), float(tr.lwh[0]), float(tr.lwh[2])],  # w, l, h
                       rotation=list(Quaternion(axis=[0, 0, 1], angle=tr.yaw).elements),
                       prev='', next='', num_lidar_pts=int(n_pts[i]), num_radar_pts=0)
            if inst_anns[i]:
                ann['prev'] = inst_anns[i][-1]['token']
                inst_anns[i][-1]['next'] = ann['token']
            inst_anns[i].append(ann)
            tab['sample_annotation'].append(ann)

    for i, tr in enumerate(tracks):
        anns = inst_anns[i]
        if not anns:
            continue
        tab['instance'].append(dict(
            token=token(cfg.seed, 'instance', scene_idx, i),
            category_token=token('category', tr.category), nbr_annotations=len(anns),
            first_annotation_token=anns[0]['token'], last_annotation_token=anns[-1]['token']))
    tab['scene'].append(dict(token=token(cfg.seed, 'scene', scene_idx), log_token=log_tok,
                             nbr_samples=n_samples, first_sample_token=sample_toks[0],
                             last_sample_token=sample_toks[-1], name=name,
                             description=f'synthetic scene {scene_idx}, {len(tracks)} objects'))
    return tab


def _static_tables(cfg: GeneratorConfig, log_tokens_by_location: Dict[str, List[str]]) -> Dict[str, list]:
    sensors = build_rig(cfg.image_size)
    categories = sorted({c for spec in CLASS_SPECS.values() for c in spec.categories}
                        | set(EXTRA_CATEGORIES))
    maps = []
    for loc, logs in sorted(log_tokens_by_location.items()):
        fname = f'maps/{token("map", loc)}.png'
        # the devkit loads a semantic-prior mask per map; an all-drivable mask is enough
        cv2.imwrite(osp.join(cfg.root, fname), np.full((200, 200), 255, np.uint8))
        maps.append(dict(category='semantic_prior', token=token('map', loc), filename=fname,
                         log_tokens=logs))
    return dict(
        attribute=[dict(token=token('attribute', a), name=a, description=a) for a in ATTRIBUTES],
        category=[dict(token=token('category', c), name=c, description=c, index=i)
                  for i, c in enumerate(categories)],
        sensor=[dict(token=token('sensor', s.channel), channel=s.channel, modality=s.modality)
                for s in sensors],
        visibility=[dict(token=t, level=lvl, description=f'visibility of whole object is {lvl}')
                    for t, lvl in VISIBILITY],
        map=maps)


def _scene_job(args):
    return generate_scene(*args)


def generate_dataset(cfg: GeneratorConfig, progress=print) -> Dict[str, int]:
    """Generates the whole data set under cfg.root; returns table sizes."""
    names = scene_names(cfg.version, cfg.num_scenes)
    for sub in ['samples/LIDAR_TOP', 'sweeps/LIDAR_TOP', 'maps', cfg.version] + \
            [f'samples/{s.channel}' for s in build_rig(cfg.image_size)[1:]]:
        os.makedirs(osp.join(cfg.root, sub), exist_ok=True)
    jobs = [(cfg, i, name, sum(s == split for _, s in names[:i]), split)
            for i, (name, split) in enumerate(names)]
    tables: Dict[str, list] = {t: [] for t in TABLES}
    if cfg.workers > 1:
        with get_context('fork').Pool(cfg.workers) as pool:
            results = pool.imap(_scene_job, jobs)
            for i, tab in enumerate(results):
                progress(f'  scene {i + 1}/{len(jobs)} ({names[i][0]}, {names[i][1]}) done')
                for t in TABLES:
                    tables[t].extend(tab[t])
    else:
        for i, job in enumerate(jobs):
            tab = _scene_job(job)
            progress(f'  scene {i + 1}/{len(jobs)} ({names[i][0]}, {names[i][1]}) done')
            for t in TABLES:
                tables[t].extend(tab[t])
    by_loc: Dict[str, List[str]] = {}
    for log in tables['log']:
        by_loc.setdefault(log['location'], []).append(log['token'])
    for t, rows in _static_tables(cfg, by_loc).items():
        tables[t].extend(rows)
    for t in TABLES:
        with open(osp.join(cfg.root, cfg.version, f'{t}.json'), 'w') as f:
            json.dump(tables[t], f, indent=0)
    return {t: len(rows) for t, rows in tables.items()}
