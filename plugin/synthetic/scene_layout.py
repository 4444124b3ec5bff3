"""Scene layout of the synthetic data set: the ego trajectory and the object tracks.

The ego vehicle drives a smooth arc (constant speed and yaw rate) through a flat world.
Objects of all 10 classes are placed around its path with random positions and yaws,
never in the ego corridor and never overlapping each other at any time of the scene;
a share of them moves at a constant, class-typical velocity along its heading, so that
the instance tracks, velocities and attributes are consistent across samples, as
nuScenes defines them.
"""
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from .object_shapes import CLASS_SPECS, ClassSpec


@dataclass
class EgoTrajectory:
    start_xy: np.ndarray
    start_yaw: float
    speed: float      # m/s
    yaw_rate: float   # rad/s

    def pose(self, t: float):
        """(x, y, yaw) of the ego vehicle t seconds after the scene start."""
        yaw = self.start_yaw + self.yaw_rate * t
        if abs(self.yaw_rate) < 1e-6:
            dx, dy = self.speed * t * np.cos(self.start_yaw), self.speed * t * np.sin(self.start_yaw)
        else:  # exact integral of a constant-curvature arc
            r = self.speed / self.yaw_rate
            dx = r * (np.sin(yaw) - np.sin(self.start_yaw))
            dy = -r * (np.cos(yaw) - np.cos(self.start_yaw))
        return self.start_xy[0] + dx, self.start_xy[1] + dy, yaw


@dataclass
class ObjectTrack:
    class_name: str
    category: str
    lwh: np.ndarray        # length, width, height (m)
    start_xy: np.ndarray   # box centre at t = 0 (global)
    yaw: float
    speed: float           # along the heading, m/s; 0 = static
    attribute: str         # '' for classes without attributes
    colour_jitter: np.ndarray
    protected: bool = False  # a split's class-coverage object: kept in the LiDAR's view

    @property
    def spec(self) -> ClassSpec:
        return CLASS_SPECS[self.class_name]

    def center(self, t: float) -> np.ndarray:
        xy = self.start_xy + self.speed * t * np.array([np.cos(self.yaw), np.sin(self.yaw)])
        return np.array([xy[0], xy[1], self.lwh[2] / 2])  # resting on the ground (z = 0)

    @property
    def velocity(self) -> np.ndarray:
        return self.speed * np.array([np.cos(self.yaw), np.sin(self.yaw)])


def _choose_attribute(spec: ClassSpec, moving: bool) -> str:
    if not spec.attributes:
        return ''
    return spec.attributes[0] if moving else spec.attributes[1]


def occludes(front: np.ndarray, front_r: float, back: np.ndarray, back_r: float,
             ego_xy: np.ndarray, margin: float = 0.05) -> bool:
    """[T] bool: whether a disc at `front` hides part of the disc at `back` from the ego.

    Positions are [T, 2] at the same times as `ego_xy`; a 2D angular-interval test.
    """
    rel_f, rel_b = front - ego_xy, back - ego_xy
    d_f, d_b = np.linalg.norm(rel_f, axis=1), np.linalg.norm(rel_b, axis=1)
    half_f = np.arcsin(np.clip(front_r / np.maximum(d_f, 1e-6), 0, 1))
    half_b = np.arcsin(np.clip(back_r / np.maximum(d_b, 1e-6), 0, 1))
    diff = np.angle(np.exp(1j * (np.arctan2(rel_f[:, 1], rel_f[:, 0])
                                 - np.arctan2(rel_b[:, 1], rel_b[:, 0]))))
    return (d_f - front_r < d_b + back_r) & (np.abs(diff) < half_f + half_b + margin)


def _choose_category(spec: ClassSpec, rng: np.random.Generator) -> str:
    # the first category is the common one (adult pedestrian, rigid bus)
    if len(spec.categories) == 1 or rng.random() < 0.85:
        return spec.categories[0]
    return spec.categories[1 + rng.integers(len(spec.categories) - 1)]


def make_scene(rng: np.random.Generator, duration: float, num_objects: int,
               area: float = 45.0, corridor: float = 3.5, max_range: float = 65.0,
               first_classes: Sequence[str] = ()) -> tuple:
    """Samples an ego trajectory and `num_objects` non-overlapping object tracks.

    Args:
        rng: random generator (the scene is a pure function of its state).
        duration: scene length in seconds.
        num_objects: how many objects to try to place (fewer if space runs out).
        area: objects are placed within this distance (m) of the ego path.
        corridor: half-width (m) of the ego lane kept free of objects.
        max_range: objects stay within this distance of the ego vehicle all scene long,
            so each is annotated in every sample.
        first_classes: classes of the first placements (then random by frequency), so a
            split can be made to contain every class (an absent class scores AP 0). They
            start within 20 m of the ego vehicle (inside every class's evaluation range)
            and nothing may hide them from the LiDAR for more than half of the scene.
    Returns:
        (EgoTrajectory, list of ObjectTrack)
    """
    ego = EgoTrajectory(start_xy=rng.uniform(200, 1800, size=2), start_yaw=rng.uniform(-np.pi, np.pi),
                        speed=rng.uniform(0.0, 8.0), yaw_rate=rng.uniform(-0.06, 0.06))
    times = np.linspace(0.0, duration, max(2, int(duration * 4) + 1))
    ego_xy = np.array([ego.pose(t)[:2] for t in times])  # [T, 2]

    names = list(CLASS_SPECS)
    freq = np.array([CLASS_SPECS[n].frequency for n in names])
    tracks: List[ObjectTrack] = []
    occupied = []  # (positions [T, 2], radius)
    hidden = []    # per protected track: [T] times at which something hides it
    for slot in range(num_objects):
        forced = slot < len(first_classes)
        for _ in range(100):
            spec = CLASS_SPECS[first_classes[slot] if forced else
                               names[rng.choice(len(names), p=freq / freq.sum())]]
            w, l, h = np.array(spec.size_wlh) * rng.normal(1.0, 0.06, size=3).clip(0.85, 1.15)
            lwh = np.array([l, w, h])
            moving = rng.random() < spec.p_moving
            speed = rng.uniform(*spec.speed_range) if moving else 0.0
            yaw = rng.uniform(-np.pi, np.pi)
            t_anchor = rng.uniform(0.0, duration)
            ex, ey, eyaw = ego.pose(t_anchor)
            rel = rng.uniform(-20.0, 20.0, size=2) if forced else rng.uniform(-area, area, size=2)
            anchor = np.array([ex, ey]) + np.array([[np.cos(eyaw), -np.sin(eyaw)],
                                                    [np.sin(eyaw), np.cos(eyaw)]]) @ rel
            heading = np.array([np.cos(yaw), np.sin(yaw)])
            start = anchor - speed * t_anchor * heading
            pos = start[None] + speed * times[:, None] * heading[None]  # [T, 2]
            radius = 0.5 * np.hypot(l, w)
            # out of the ego corridor at all times, within annotation range at all times
            d_path = np.linalg.norm(pos[:, None] - ego_xy[None], axis=-1)   # [T, T]
            if d_path.min() < corridor + radius or np.diagonal(d_path).max() > max_range:
                continue
            if any((np.linalg.norm(pos - p, axis=1) < radius + r + 0.3).any() for p, r in occupied):
                continue
            # protected (forced) objects stay in the LiDAR's line of sight half the time
            new_hidden = [hid | occludes(pos, radius, p, r, ego_xy)
                          for hid, (p, r) in zip(hidden, occupied)]
            own = np.zeros(len(times), bool)
            if forced:
                for p, r in occupied:
                    own |= occludes(p, r, pos, radius, ego_xy)
                new_hidden.append(own)
            if any(hid.mean() > 0.5 for hid in new_hidden):
                continue
            hidden = new_hidden
            break
        else:
            continue  # no room for this slot
        occupied.append((pos, radius))
        tracks.append(ObjectTrack(
            class_name=spec.name, category=_choose_category(spec, rng),
            lwh=lwh, start_xy=start, yaw=float(yaw), speed=float(speed),
            attribute=_choose_attribute(spec, moving),
            colour_jitter=rng.uniform(0.8, 1.2, size=3), protected=forced))
    return ego, tracks


def make_clutter(rng: np.random.Generator, ego: EgoTrajectory, duration: float,
                 tracks: List[ObjectTrack], num_buildings: int = 8,
                 num_poles: int = 12, corridor: float = 3.5) -> np.ndarray:
    """Static, unannotated structures: buildings far from the path and thin poles near it.

    They give the LiDAR and the cameras realistic returns that are *not* objects. None of
    them hides a protected track (see make_scene's first_classes).
    Returns [C, 7] boxes (cx, cy, cz, half_l, half_w, half_h, yaw) in the global frame.
    """
    times = np.linspace(0.0, duration, max(2, int(duration * 4) + 1))
    ego_xy = np.array([ego.pose(t)[:2] for t in times])
    obj_xy = [(np.array([tr.center(t)[:2] for t in times]), 0.5 * np.hypot(*tr.lwh[:2]))
              for tr in tracks]
    boxes = []
    for kind, count in (('building', num_buildings), ('pole', num_poles)):
        for _ in range(count * 20):
            if sum(b[-1] == kind for b in boxes) >= count:
                break
            ex, ey, eyaw = ego.pose(rng.uniform(0.0, duration))
            if kind == 'building':
                half = np.array([rng.uniform(3, 10), rng.uniform(2, 5), rng.uniform(3, 8)])
                dist = rng.uniform(48, 65)
            else:
                half = np.array([0.12, 0.12, rng.uniform(2, 4)])
                dist = rng.uniform(6, 40)
            ang = rng.uniform(-np.pi, np.pi)
            xy = np.array([ex + dist * np.cos(eyaw + ang), ey + dist * np.sin(eyaw + ang)])
            if np.linalg.norm(ego_xy - xy, axis=1).min() < corridor + np.hypot(half[0], half[1]):
                continue
            r_box = np.hypot(half[0], half[1])
            if any((np.linalg.norm(p - xy, axis=1) < r + r_box + 0.3).any() for p, r in obj_xy):
                continue
            if any(occludes(np.broadcast_to(xy, p.shape), r_box, p, r, ego_xy).any()
                   for (p, r), tr in zip(obj_xy, tracks) if tr.protected):
                continue
            boxes.append((xy[0], xy[1], half[2], *half, rng.uniform(-np.pi, np.pi), kind))
    return np.array([b[:7] for b in boxes], dtype=np.float64).reshape(-1, 7)
