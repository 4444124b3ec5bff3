"""Class shape models for the synthetic nuScenes-format data set.

Each of the 10 nuScenes detection classes is a small set of box-shaped parts laid out
inside the annotation box so that classes differ in form, not only in size (a truck has
a cab and a raised cargo box, a trailer stands on rear wheels with a hitch and no cab, a
bus is one long tall body, a motorcycle has an engine block a bicycle lacks, a
pedestrian is legs + torso + head) and so that the front differs from the back in both
LiDAR and images (hood vs trunk, cab, handlebars, feet, backpack). The reason:
plain boxes of overlapping sizes measure the generator, not the detector.

Object frame: x forward (length), y left (width), z up, origin at the box centre.
Part extents are fractions of (length, width, height) in [-0.5, 0.5], and the parts of a
class always touch all six faces of the annotation box, so the box is tight.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

# (x0, x1, y0, y1, z0, z1) as fractions of (l, w, h), and a material name.
Part = Tuple[float, float, float, float, float, float, str]


@dataclass(frozen=True)
class ClassSpec:
    """What the generator needs to know about one detection class."""
    name: str                      # nuScenes detection class name
    categories: Tuple[str, ...]    # nuScenes category names that map to it
    size_wlh: Tuple[float, float, float]  # nuScenes mean size (width, length, height), m
    parts: Tuple[Part, ...]
    color_bgr: Tuple[int, int, int]
    intensity: float               # mean LiDAR reflectance (0-255)
    # (when moving, when static); empty for classes without attributes. A static object's
    # state is the one mmdet3d's NuScenesMetric infers from a speed below 0.2 m/s, so that
    # the attribute is observable (through the velocity) rather than a coin flip.
    attributes: Tuple[str, ...]
    speed_range: Tuple[float, float] = (0.0, 0.0)  # m/s when moving
    p_moving: float = 0.0
    frequency: float = 0.1


CLASS_SPECS: Dict[str, ClassSpec] = {
    'car': ClassSpec(
        'car', ('vehicle.car',), (1.95, 4.62, 1.73),
        parts=(( -.50, .50, -.50, .50, -.50, .05, 'body'),      # lower body, full length
               ( -.32, .18, -.45, .45, .05, .50, 'glass')),     # cabin set back: long hood
        color_bgr=(60, 60, 200), intensity=70.,
        attributes=('vehicle.moving', 'vehicle.parked'),
        speed_range=(3.0, 11.0), p_moving=0.5, frequency=0.30),
    'truck': ClassSpec(
        'truck', ('vehicle.truck',), (2.52, 6.93, 2.84),
        parts=(( .30, .50, -.50, .50, -.50, .30, 'cab'),        # cab at the front, lower
               (-.50, .27, -.50, .50, -.28, .50, 'body'),       # raised cargo box
               (-.50, .30, -.35, .35, -.50, -.28, 'dark')),     # chassis under it
        color_bgr=(40, 140, 230), intensity=90.,
        attributes=('vehicle.moving', 'vehicle.parked'),
        speed_range=(3.0, 9.0), p_moving=0.4, frequency=0.08),
    'bus': ClassSpec(
        'bus', ('vehicle.bus.rigid', 'vehicle.bus.bendy'), (2.94, 11.19, 3.47),
        parts=((-.50, .50, -.50, .50, -.38, .44, 'body'),       # one long, tall body
               (-.45, -.05, -.30, .30, .44, .50, 'dark'),       # roof unit at the rear
               (-.42, .42, -.42, .42, -.50, -.38, 'dark')),     # wheels / underbody
        color_bgr=(40, 200, 240), intensity=100.,
        attributes=('vehicle.moving', 'vehicle.stopped'),
        speed_range=(3.0, 9.0), p_moving=0.5, frequency=0.05),
    'trailer': ClassSpec(
        'trailer', ('vehicle.trailer',), (2.92, 12.28, 3.87),
        parts=((-.50, .42, -.50, .50, -.18, .50, 'body'),       # box, no cab, raised high
               ( .42, .50, -.08, .08, -.18, -.08, 'dark'),      # hitch at the front
               (-.46, -.22, -.45, .45, -.50, -.18, 'dark'),     # rear axles
               ( .22, .28, -.40, .40, -.50, -.18, 'dark')),     # landing legs
        color_bgr=(170, 170, 170), intensity=110.,
        attributes=('vehicle.moving', 'vehicle.parked'),
        speed_range=(3.0, 8.0), p_moving=0.2, frequency=0.05),
    'construction_vehicle': ClassSpec(
        'construction_vehicle', ('vehicle.construction',), (2.85, 6.37, 3.19),
        parts=((-.50, .30, -.50, .50, -.50, -.15, 'dark'),      # tracks / chassis
               (-.50, -.20, -.50, .50, -.15, .15, 'body'),      # engine at the back
               (-.20, .15, -.50, .00, -.15, .50, 'cab'),        # cab offset to one side
               ( .15, .50, .05, .25, -.35, .40, 'body')),       # boom reaching forward
        color_bgr=(20, 180, 250), intensity=120.,
        attributes=('vehicle.moving', 'vehicle.parked'),
        speed_range=(1.0, 3.0), p_moving=0.15, frequency=0.05),
    'pedestrian': ClassSpec(
        'pedestrian', ('human.pedestrian.adult', 'human.pedestrian.child',
                       'human.pedestrian.construction_worker', 'human.pedestrian.police_officer'),
        (0.67, 0.73, 1.77),
        parts=((-.15, .15, -.25, -.05, -.50, -.02, 'dark'),     # left leg
               (-.15, .15, .05, .25, -.50, -.02, 'dark'),       # right leg
               ( .15, .50, -.25, .25, -.50, -.44, 'dark'),      # feet point forward
               (-.20, .15, -.50, .50, -.02, .35, 'body'),       # torso and arms
               (-.12, .18, -.15, .15, .35, .50, 'skin'),        # head
               (-.50, -.20, -.30, .30, .00, .30, 'cab')),       # backpack behind
        color_bgr=(180, 60, 160), intensity=40.,
        attributes=('pedestrian.moving', 'pedestrian.standing'),
        speed_range=(0.8, 1.8), p_moving=0.6, frequency=0.15),
    'motorcycle': ClassSpec(
        'motorcycle', ('vehicle.motorcycle',), (0.77, 2.11, 1.47),
        parts=((-.50, -.20, -.10, .10, -.50, -.05, 'dark'),     # rear wheel
               ( .20, .50, -.10, .10, -.50, -.05, 'dark'),      # front wheel
               (-.30, .30, -.30, .30, -.30, .10, 'body'),       # engine / tank block
               (-.42, .00, -.20, .20, .10, .20, 'dark'),        # seat
               ( .20, .35, -.50, .50, .10, .50, 'glass')),      # fairing + handlebar
        color_bgr=(200, 80, 40), intensity=60.,
        attributes=('cycle.with_rider', 'cycle.without_rider'),
        speed_range=(3.0, 10.0), p_moving=0.5, frequency=0.06),
    'bicycle': ClassSpec(
        'bicycle', ('vehicle.bicycle',), (0.61, 1.70, 1.29),
        parts=((-.50, -.10, -.05, .05, -.50, .10, 'dark'),      # rear wheel (thin)
               ( .10, .50, -.05, .05, -.50, .10, 'dark'),       # front wheel
               (-.30, .30, -.04, .04, -.10, .20, 'body'),       # frame, no engine
               (-.25, -.10, -.10, .10, .20, .30, 'dark'),       # saddle
               ( .25, .32, -.50, .50, .20, .50, 'body')),       # wide handlebar in front
        color_bgr=(80, 200, 80), intensity=50.,
        attributes=('cycle.with_rider', 'cycle.without_rider'),
        speed_range=(2.0, 6.0), p_moving=0.4, frequency=0.06),
    'traffic_cone': ClassSpec(
        'traffic_cone', ('movable_object.trafficcone',), (0.41, 0.41, 1.07),
        parts=((-.50, .50, -.50, .50, -.50, -.42, 'dark'),      # square base
               (-.30, .30, -.30, .30, -.42, .05, 'body'),       # tapering body
               (-.15, .15, -.15, .15, .05, .50, 'skin')),       # reflective tip
        color_bgr=(0, 110, 255), intensity=200., attributes=(), frequency=0.10),
    'barrier': ClassSpec(
        'barrier', ('movable_object.barrier',), (2.53, 0.50, 0.98),
        parts=((-.50, .50, -.50, .50, -.10, .50, 'body'),       # plank
               (-.50, .50, -.45, -.30, -.50, -.10, 'dark'),     # feet
               (-.50, .50, .30, .45, -.50, -.10, 'dark')),
        color_bgr=(230, 230, 230), intensity=150., attributes=(), frequency=0.10),
}

# Order of the nuScenes detection classes used by mmdet3d's NuScenesDataset.
DETECTION_CLASSES = ('car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle',
                     'motorcycle', 'pedestrian', 'traffic_cone', 'barrier')

# Per-material multipliers: (colour gain, LiDAR intensity gain).
MATERIALS = {
    'body': (1.0, 1.0), 'glass': (0.45, 0.3), 'cab': (0.8, 1.1),
    'dark': (0.25, 0.5), 'skin': (1.3, 1.6),
}


def part_boxes(spec: ClassSpec, lwh: np.ndarray) -> np.ndarray:
    """Parts of one object in its own frame.

    Args:
        spec: the class.
        lwh: (length, width, height) of the annotation box, metres.
    Returns:
        [P, 6] array of (cx, cy, cz, half_l, half_w, half_h) in the object frame.
    """
    frac = np.array([p[:6] for p in spec.parts], dtype=np.float64)  # [P, 6]
    lo = frac[:, 0::2] * lwh  # x0, y0, z0
    hi = frac[:, 1::2] * lwh
    return np.concatenate([(lo + hi) / 2, (hi - lo) / 2], axis=1)


def part_materials(spec: ClassSpec) -> List[str]:
    return [p[6] for p in spec.parts]
