"""All solid geometry of a synthetic scene at one instant, as oriented boxes.

The LiDAR ray caster and the camera renderer both consume this one description, so the
two modalities see exactly the same world and never disagree about a scene.
"""
from dataclasses import dataclass
from typing import List

import numpy as np

from .object_shapes import MATERIALS, part_boxes, part_materials
from .scene_layout import ObjectTrack


@dataclass
class WorldBoxes:
    centers: np.ndarray    # [P, 3] global
    halves: np.ndarray     # [P, 3] half extents along the box's own axes
    yaws: np.ndarray       # [P]
    owner: np.ndarray      # [P] index of the object track, -1 for clutter
    colors: np.ndarray     # [P, 3] BGR, 0-255
    intensity: np.ndarray  # [P] mean LiDAR reflectance

    def __len__(self):
        return len(self.yaws)


def world_boxes_at(tracks: List[ObjectTrack], clutter: np.ndarray, t: float) -> WorldBoxes:
    """Every part of every object at time t (seconds from scene start), plus clutter."""
    centers, halves, yaws, owner, colors, inten = [], [], [], [], [], []
    for idx, tr in enumerate(tracks):
        parts = part_boxes(tr.spec, tr.lwh)              # object frame
        c, s = np.cos(tr.yaw), np.sin(tr.yaw)
        rot = np.array([[c, -s, 0.], [s, c, 0.], [0., 0., 1.]])
        centers.append(parts[:, :3] @ rot.T + tr.center(t))
        halves.append(parts[:, 3:])
        yaws.append(np.full(len(parts), tr.yaw))
        owner.append(np.full(len(parts), idx))
        gains = np.array([MATERIALS[m] for m in part_materials(tr.spec)])
        colors.append(np.clip(np.array(tr.spec.color_bgr)[None] * tr.colour_jitter[None]
                              * gains[:, :1], 0, 255))
        inten.append(tr.spec.intensity * gains[:, 1])
    if len(clutter):
        centers.append(clutter[:, :3])
        halves.append(clutter[:, 3:6])
        yaws.append(clutter[:, 6])
        owner.append(np.full(len(clutter), -1))
        tall = clutter[:, 5] > 1.5
        colors.append(np.where(tall[:, None], [[120., 130., 140.]], [[90., 90., 90.]]))
        inten.append(np.full(len(clutter), 30.0))
    if not centers:
        z = np.zeros((0, 3))
        return WorldBoxes(z, z, np.zeros(0), np.zeros(0, int), z, np.zeros(0))
    return WorldBoxes(np.concatenate(centers), np.concatenate(halves), np.concatenate(yaws),
                      np.concatenate(owner).astype(int), np.concatenate(colors),
                      np.concatenate(inten))
