"""`sample_triplane`: plane values at cell centres and its input checks."""
import pytest
import torch

import plugin  # noqa: F401
from plugin.models.utils.triplane_sampling import sample_triplane


def test_sampling_returns_plane_values_at_cell_centres():
    g = torch.Generator().manual_seed(0)
    t, c = 8, 5
    planes = torch.randn(2, 3, c, t, t, generator=g)
    idx = torch.randint(0, t, (2, 9, 3), generator=g)                 # (ix, iy, iz) per point
    points = (idx.float() + 0.5) / t
    ix, iy, iz = idx.unbind(-1)
    b = torch.arange(2)[:, None]
    xy = planes[:, 0].permute(0, 2, 3, 1)[b, iy, ix]                   # rows y, columns x
    xz = planes[:, 1].permute(0, 2, 3, 1)[b, iz, ix]                   # rows z, columns x
    yz = planes[:, 2].permute(0, 2, 3, 1)[b, iz, iy]                   # rows z, columns y
    torch.testing.assert_close(sample_triplane(planes, points), xy + xz + yz)
    torch.testing.assert_close(sample_triplane(planes, points, 'concat'), torch.cat([xy, xz, yz], -1))
    # bilinear between two centres along x; the border cell beyond the range
    half = points.clone()
    half[..., 0] = (1.0 + 0.5) / t
    left, right = points.clone(), points.clone()
    left[..., 0], right[..., 0] = 0.5 / t, 1.5 / t
    mid = half.clone()
    mid[..., 0] = 1.0 / t
    torch.testing.assert_close(sample_triplane(planes, mid),
                               0.5 * (sample_triplane(planes, left) + sample_triplane(planes, right)))
    outside = left.clone()
    outside[..., 0] = -0.3
    torch.testing.assert_close(sample_triplane(planes, outside), sample_triplane(planes, left))


def test_sampling_checks_its_inputs():
    with pytest.raises(ValueError, match='planes'):
        sample_triplane(torch.zeros(1, 2, 4, 8, 8), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match='reduce'):
        sample_triplane(torch.zeros(1, 3, 4, 8, 8), torch.zeros(1, 3, 3), 'mean')
