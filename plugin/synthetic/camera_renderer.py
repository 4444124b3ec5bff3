"""Camera renderer for the synthetic data set.

Draws the same oriented boxes the LiDAR sees into each camera with the same calibration:
filled, back-face-culled, near-plane-clipped faces in depth order (painter's algorithm),
shaded by their orientation, with a bright front face and a red rear face so that an
object's heading is visible, over a ground/sky background with per-frame sensor noise.
"""
from functools import lru_cache
from typing import Dict

import cv2
import numpy as np

from .sensor_rig import Sensor
from .world_boxes import WorldBoxes

# corner order: x-, x+ over (y-, y+) over (z-, z+); faces as corner index loops
_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
_FACES = (
    ((4, 6, 7, 5), (1, 0, 0)),    # +x: front
    ((0, 1, 3, 2), (-1, 0, 0)),   # -x: rear
    ((2, 3, 7, 6), (0, 1, 0)),
    ((0, 4, 5, 1), (0, -1, 0)),
    ((1, 5, 7, 3), (0, 0, 1)),
    ((0, 2, 6, 4), (0, 0, -1)),
)
_LIGHT = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
_FRONT_TINT = np.array([200., 255., 255.])   # pale yellow (BGR): headlights / faces
_REAR_TINT = np.array([40., 40., 220.])      # red: tail lights / backs
_NEAR = 0.1


def box_corners(centers: np.ndarray, halves: np.ndarray, yaws: np.ndarray) -> np.ndarray:
    """[P, 8, 3] corners of oriented boxes (order of `_SIGNS`)."""
    local = _SIGNS[None] * halves[:, None]
    c, s = np.cos(yaws), np.sin(yaws)
    x = local[..., 0] * c[:, None] - local[..., 1] * s[:, None]
    y = local[..., 0] * s[:, None] + local[..., 1] * c[:, None]
    return np.stack([x, y, local[..., 2]], axis=-1) + centers[:, None]


def render_background(sensor: Sensor, seed: int = 0) -> np.ndarray:
    """Static ground + sky image of a camera on a level ego vehicle (uint8 BGR).

    The rig is rigid and the ground flat, so the background only depends on the camera.
    """
    h, w = sensor.height, sensor.width
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(sensor.intrinsic).T
    rays = rays @ sensor.rotation.rotation_matrix.T            # ego frame
    height = sensor.translation[2]
    down = rays[..., 2] < -1e-4
    dist = np.where(down, height / np.maximum(-rays[..., 2], 1e-4), np.inf)
    gx = np.where(down, sensor.translation[0] + rays[..., 0] * np.where(down, dist, 0), 0)
    gy = np.where(down, sensor.translation[1] + rays[..., 1] * np.where(down, dist, 0), 0)
    rng = np.random.default_rng(seed)
    texture = rng.normal(0.0, 1.0, size=(64, 64))
    tex = texture[np.floor(gx * 2).astype(int) % 64, np.floor(gy * 2).astype(int) % 64]
    fog = np.clip(dist / 120.0, 0, 1)[..., None]
    ground = np.array([85., 88., 92.]) + 10 * tex[..., None]
    horizon = np.array([170., 165., 160.])
    sky = np.array([235., 200., 150.]) * (1 - 0.4 * v[..., None] / h)  # brighter upwards
    img = np.where(down[..., None], ground * (1 - fog) + horizon * fog, sky)
    return np.clip(img, 0, 255).astype(np.uint8)


def _clip_near(poly: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon against z >= _NEAR."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ina, inb = a[2] >= _NEAR, b[2] >= _NEAR
        if ina:
            out.append(a)
        if ina != inb:
            t = (_NEAR - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out)


def render_camera(boxes: WorldBoxes, sensor: Sensor, ego2global: np.ndarray,
                  background: np.ndarray, noise: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Renders one camera image (uint8 BGR, sensor.height x sensor.width)."""
    img = background.copy()
    if len(boxes):
        global2cam = np.linalg.inv(ego2global @ sensor.sensor2ego)
        cam_pos = (ego2global @ sensor.sensor2ego)[:3, 3]
        corners = box_corners(boxes.centers, boxes.halves, boxes.yaws)          # [P, 8, 3]
        cam = corners @ global2cam[:3, :3].T + global2cam[:3, 3]
        faces = []
        for j in range(len(boxes)):
            if (cam[j, :, 2] < _NEAR).all():
                continue
            c, s = np.cos(boxes.yaws[j]), np.sin(boxes.yaws[j])
            rot = np.array([[c, -s, 0.], [s, c, 0.], [0., 0., 1.]])
            for idx, normal in _FACES:
                n = rot @ np.array(normal, float)
                centre = corners[j, list(idx)].mean(0)
                if n @ (cam_pos - centre) <= 0:         # back face
                    continue
                poly = _clip_near(cam[j, list(idx)])
                if len(poly) < 3:
                    continue
                shade = 0.55 + 0.45 * max(0.0, n @ _LIGHT)
                colour = boxes.colors[j] * shade
                if boxes.owner[j] >= 0 and normal[0] == 1:
                    colour = 0.5 * colour + 0.5 * _FRONT_TINT
                elif boxes.owner[j] >= 0 and normal[0] == -1:
                    colour = 0.6 * colour + 0.4 * _REAR_TINT
                faces.append((np.linalg.norm(poly.mean(0)), poly, colour))
        faces.sort(key=lambda f: -f[0])
        k = sensor.intrinsic
        for _, poly, colour in faces:
            uv = poly[:, :2] / poly[:, 2:3] * [k[0, 0], k[1, 1]] + [k[0, 2], k[1, 2]]
            pts = np.round(np.clip(uv, -1e5, 1e5) * 16).astype(np.int32)
            cv2.fillPoly(img, [pts], tuple(float(x) for x in colour), lineType=cv2.LINE_AA, shift=4)
    oy, ox = rng.integers(0, noise.shape[0] - img.shape[0] + 1), rng.integers(0, noise.shape[1] - img.shape[1] + 1)
    gain = rng.uniform(0.9, 1.1)
    out = img.astype(np.int16) * gain + noise[oy:oy + img.shape[0], ox:ox + img.shape[1]]
    return np.clip(out, 0, 255).astype(np.uint8)


def make_noise_bank(height: int, width: int, rng: np.random.Generator, sigma: float = 4.0) -> np.ndarray:
    """A noise image slightly larger than the frame; each frame crops it at a random offset."""
    return rng.normal(0.0, sigma, size=(height + 32, width + 32, 3)).astype(np.float32)


@lru_cache(maxsize=2)
def _cached_backgrounds(image_size, seed):
    from .sensor_rig import build_rig
    return {s.channel: render_background(s, seed + i) for i, s in enumerate(build_rig(image_size))
            if s.modality == 'camera'}


def backgrounds_for(image_size, seed: int) -> Dict[str, np.ndarray]:
    """Backgrounds of all cameras; computed once per process (they never change)."""
    return _cached_backgrounds(tuple(image_size), seed)
