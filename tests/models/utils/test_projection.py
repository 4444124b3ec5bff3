"""The projection helper (project, visibility, lifted points, pixel rays) against a numpy pinhole model."""
import numpy as np
import torch

import plugin  # noqa: F401
from plugin.models.utils import lift_pixels, pixel_rays, project_points, visible_mask
from tests.helpers.pinhole_cameras import pinhole_camera, stack_lidar2img


def test_projection_and_visibility_against_pinhole_model():
    cams = [pinhole_camera(0), pinhole_camera(90)]
    l2i = stack_lidar2img(cams)
    pts = np.array([[10.0, 1.0, 0.5], [-5.0, 0.0, 0.0], [3.0, 20.0, 1.0]])
    uv, depth = project_points(torch.tensor(pts[None]), l2i)
    for v, (l2c, k) in enumerate(cams):
        cam = (l2c[:3, :3] @ pts.T).T + l2c[:3, 3]
        ref = (k @ cam.T).T
        np.testing.assert_allclose(depth[0, v].numpy(), cam[:, 2], atol=1e-9)
        front = cam[:, 2] > 0
        np.testing.assert_allclose(uv[0, v, front].numpy(), ref[front, :2] / ref[front, 2:], atol=1e-6)
    seen = visible_mask(uv, depth, [(360, 640)])[0].numpy()
    assert seen[0].tolist() == [True, False, False]      # front camera sees the first point
    assert seen[1].tolist() == [False, False, True]      # the left one the third


def test_lifted_rays_match_inverse_pinhole_geometry():
    cams = [pinhole_camera(30), pinhole_camera(-120)]
    l2i = stack_lidar2img(cams)
    uv = torch.tensor([[[[100.0, 50.0], [600.0, 300.0]]] * 2], dtype=torch.float64)
    depths = torch.tensor([2.0, 7.5, 30.0], dtype=torch.float64)
    pts = lift_pixels(uv, depths, l2i)[0].numpy()          # [V, N, D, 3]
    for v, (l2c, k) in enumerate(cams):
        r, t = l2c[:3, :3], l2c[:3, 3]
        for n, (u, w) in enumerate(uv[0, v].numpy()):
            for j, d in enumerate(depths.numpy()):
                cam = d * np.linalg.inv(k) @ np.array([u, w, 1.0])   # point on the ray at depth d
                np.testing.assert_allclose(pts[v, n, j], r.T @ (cam - t), atol=1e-8)


def test_pixel_rays_are_the_rotated_inverse_intrinsics():
    """The ray through pixel (u, v) has the LiDAR-frame direction R^T K^-1 (u, v, 1),
    normalised, whatever the camera's position."""
    cams = [pinhole_camera(30, t=(1.0, -2.0, 1.5)), pinhole_camera(-120, f=300.0)]
    uv = torch.tensor([[[[100.0, 50.0], [320.0, 180.0], [600.0, 300.0]]] * 2], dtype=torch.float64)
    rays = pixel_rays(uv, stack_lidar2img(cams))[0].numpy()                     # [V, N, 3]
    for v, (l2c, k) in enumerate(cams):
        for n, (u, w) in enumerate(uv[0, v].numpy()):
            d = l2c[:3, :3].T @ np.linalg.inv(k) @ np.array([u, w, 1.0])
            np.testing.assert_allclose(rays[v, n], d / np.linalg.norm(d), atol=1e-9)
