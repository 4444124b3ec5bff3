"""Ray-cast LiDAR for the synthetic data set (a 32-beam spinning sensor like nuScenes').

Every beam is intersected with the ground plane (z = 0) and with every oriented box of
the scene; the nearest hit wins, so occlusion is physical. Points are returned in the
LiDAR frame as nuScenes stores them: (x, y, z, intensity, ring index). The caster also
reports, per object, how many rays reach it and how many would reach it with nothing in
between, which gives the annotation's visibility level.
"""
from dataclasses import dataclass

import numpy as np

from .sensor_rig import LIDAR_BEAM_ELEVATIONS_DEG
from .world_boxes import WorldBoxes


@dataclass
class LidarSweep:
    points: np.ndarray        # [N, 5] float32, LiDAR frame
    hits: np.ndarray          # [num_objects] rays whose first hit is the object
    reachable: np.ndarray     # [num_objects] rays that would hit it without occluders


def _slab(origin: np.ndarray, dirs: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Entry distance of rays (box frame) into an axis-aligned box; inf when missed."""
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = 1.0 / dirs
        t1 = (-half - origin) * inv
        t2 = (half - origin) * inv
    tmin = np.nanmax(np.minimum(t1, t2), axis=-1)
    tmax = np.nanmin(np.maximum(t1, t2), axis=-1)
    hit = (tmax >= tmin) & (tmin > 0.05)
    return np.where(hit, tmin, np.inf)


def cast_lidar(boxes: WorldBoxes, num_objects: int, lidar2global: np.ndarray,
               rng: np.random.Generator, num_azimuth: int = 1084, max_range: float = 70.0,
               dropout: float = 0.03, range_noise: float = 0.015) -> LidarSweep:
    """Simulates one LiDAR revolution.

    Args:
        boxes: scene geometry at the sweep's timestamp.
        num_objects: number of object tracks (for the per-object counters).
        lidar2global: 4x4 pose of the sensor.
        rng: random generator for noise and dropout.
    """
    elev = np.deg2rad(LIDAR_BEAM_ELEVATIONS_DEG)
    n_beam = len(elev)
    az = np.linspace(-np.pi, np.pi, num_azimuth, endpoint=False)
    dirs_l = np.stack(np.broadcast_arrays(
        np.cos(elev)[:, None] * np.cos(az)[None], np.cos(elev)[:, None] * np.sin(az)[None],
        np.sin(elev)[:, None]), axis=-1)                      # [beam, az, 3] LiDAR frame
    rot, origin = lidar2global[:3, :3], lidar2global[:3, 3]
    dirs_g = dirs_l @ rot.T                                   # global frame

    # ground plane
    with np.errstate(divide='ignore'):
        t_best = np.where(dirs_g[..., 2] < -1e-6, -origin[2] / dirs_g[..., 2], np.inf)
    hit_box = np.full(t_best.shape, -1)                       # -1: ground
    reach_sets = [[] for _ in range(num_objects)]

    # Each box only needs the azimuth columns its bounding circle spans (seen from the
    # sensor), which keeps the cost proportional to the scene's angular coverage.
    sensor_yaw = np.arctan2(rot[1, 0], rot[0, 0])
    for j in range(len(boxes)):
        rel = boxes.centers[j] - origin
        dist = np.hypot(rel[0], rel[1])
        radius = np.hypot(boxes.halves[j, 0], boxes.halves[j, 1])
        if dist - radius > max_range:
            continue
        if dist > radius + 1e-3:
            centre_az = np.arctan2(rel[1], rel[0]) - sensor_yaw
            half_ang = np.arcsin(min(1.0, radius / dist)) + 2 * np.pi / num_azimuth
            lo = int(np.floor((centre_az - half_ang + np.pi) / (2 * np.pi) * num_azimuth))
            hi = int(np.ceil((centre_az + half_ang + np.pi) / (2 * np.pi) * num_azimuth))
            cols = np.arange(lo, hi + 1) % num_azimuth
        else:
            cols = np.arange(num_azimuth)
        c, s = np.cos(boxes.yaws[j]), np.sin(boxes.yaws[j])
        to_box = np.array([[c, s, 0.], [-s, c, 0.], [0., 0., 1.]])  # global -> box frame
        t = _slab(to_box @ rel * -1.0, dirs_g[:, cols] @ to_box.T, boxes.halves[j])
        if boxes.owner[j] >= 0:
            b, a = np.nonzero(np.isfinite(t))
            reach_sets[boxes.owner[j]].append(b * num_azimuth + cols[a])
        closer = t < t_best[:, cols]
        sub_t, sub_b = t_best[:, cols], hit_box[:, cols]
        sub_t[closer] = t[closer]
        sub_b[closer] = j
        t_best[:, cols], hit_box[:, cols] = sub_t, sub_b

    valid = (t_best < max_range) & (rng.random(t_best.shape) > dropout)
    t = t_best[valid] + rng.normal(0.0, range_noise, size=valid.sum())
    xyz = dirs_l[valid] * t[:, None]
    box = hit_box[valid]
    ground = box < 0
    inten = np.where(ground, rng.uniform(2.0, 15.0, size=box.shape),
                     boxes.intensity[np.maximum(box, 0)] * rng.uniform(0.8, 1.2, size=box.shape)) \
        if len(boxes) else rng.uniform(2.0, 15.0, size=box.shape)
    ring = np.broadcast_to(np.arange(n_beam)[:, None], t_best.shape)[valid]
    points = np.concatenate([xyz, np.clip(inten, 0, 255)[:, None], ring[:, None]],
                            axis=1).astype(np.float32)

    obj = boxes.owner[hit_box[hit_box >= 0]] if len(boxes) else np.zeros(0, int)
    hits = np.bincount(obj[obj >= 0], minlength=num_objects)[:num_objects]
    reachable = np.array([len(np.unique(np.concatenate(r))) if r else 0 for r in reach_sets],
                         dtype=np.int64)
    return LidarSweep(points, hits, reachable)
