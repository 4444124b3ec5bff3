"""AQR window sizes: odd side lengths in cells / feature pixels, given directly or in metres.

A window is a square centred on its query's cell, so its side is an odd number of cells.
Cells depend on the grid: 5 cells are 3 m on nuScenes' 0.6 m BEV cells but 8 m on a 1.6 m
grid. A side in metres keeps the window's meaning across configs:

  * BEV: `metres / cell`, with the cell size of the grid the window lives on (the
    point-cloud range's x / y extent over the BEV map's columns / rows, averaged);
  * camera: a feature pixel is `stride` image pixels, and an image pixel at depth `d`
    spans `d / f` metres across the optical axis (f: focal length in pixels), so a
    camera window of `metres` covers `metres * f / (d * stride)` feature pixels at the
    reference depth `d` (`cam_reference_depth`, 20 m by default). f is the mean focal
    length of the batch's views, read from lidar2img after every image resize
    (`CameraGeometry.focal`, computed on the host), and the stride is the padded input's
    width over the feature map's.

Either way the side is rounded to the nearest odd count (halves away from zero; at
least 1).
"""
import math
from typing import NamedTuple, Optional, Sequence, Tuple, Union

WindowSize = Union[int, Sequence[int]]


def check_window_size(value, key: str = 'window_size') -> int:
    """An odd positive int, else a ValueError naming the config key."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % 2 == 0:
        raise ValueError(f'{key} must be an odd positive integer (1, 3, 5, ...), got {value!r}')
    return value


def split_window_size(window_size: WindowSize, key: str = 'window_size') -> Tuple[int, int]:
    """odd int -> (w, w); (bev, cam) -> checked pair."""
    if isinstance(window_size, (tuple, list)):
        if len(window_size) != 2:
            raise ValueError(f'{key} must be an odd int or a (bev_window, cam_window) pair, got {window_size!r}')
        return check_window_size(window_size[0], f'{key}[0]'), check_window_size(window_size[1], f'{key}[1]')
    w = check_window_size(window_size, key)
    return w, w


def window_radius(side: int) -> int:
    """Cells from a window's centre to its edge: a side of 2r + 1 cells has radius r. The
    one place the radius is derived; the key layout, the bias and the kernels read it."""
    return (int(side) - 1) // 2


def check_metres(value, key: str) -> float:
    """A finite length > 0 (metres), else a ValueError naming the config key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f'{key} must be a length in metres > 0, got {value!r}')
    return float(value)


def odd_cells(metres: float, cell: float) -> int:
    """The odd number of cells nearest to `metres / cell` (halves away from zero), >= 1."""
    return max(1, 2 * math.floor((metres / cell - 1.0) / 2.0 + 0.5) + 1)


def bev_cell_size(pc_range: Sequence[float], bev_shape: Sequence[int]) -> float:
    """Metres per BEV cell: the mean of the x and y cell sides."""
    h, w = int(bev_shape[0]), int(bev_shape[1])
    return 0.5 * ((float(pc_range[3]) - float(pc_range[0])) / w + (float(pc_range[4]) - float(pc_range[1])) / h)


class WindowSides(NamedTuple):
    """The BEV and camera window sides, each in cells (int) or in metres (float)."""
    bev: Union[int, float]
    cam: Union[int, float]
    bev_in_metres: bool
    cam_in_metres: bool
    cam_reference_depth: float

    @classmethod
    def of(cls, cells: Tuple[Optional[int], Optional[int]], metres: Tuple[Optional[float], Optional[float]],
           cam_reference_depth: float, keys: Tuple[str, str, str, str], reference_key: str) -> 'WindowSides':
        """One side per modality from (bev, cam) in cells or in metres, never both; `keys`
        name the four settings (bev cells, cam cells, bev metres, cam metres) in errors."""
        sides = []
        for cell, metre, cell_key, metre_key in zip(cells, metres, keys[:2], keys[2:]):
            if cell is not None and metre is not None:
                raise ValueError(f'{cell_key} and {metre_key} both set: give the window in cells or in metres')
            sides.append((check_metres(metre, metre_key), True) if metre is not None
                         else (check_window_size(cell, cell_key), False))
        depth = check_metres(cam_reference_depth, reference_key)
        return cls(sides[0][0], sides[1][0], sides[0][1], sides[1][1], depth)

    @property
    def in_cells(self) -> Optional[Tuple[int, int]]:
        """(bev, cam) in cells when both are given in cells, else None (known per batch)."""
        return None if self.bev_in_metres or self.cam_in_metres else (self.bev, self.cam)

    def cells(self, pc_range: Optional[Sequence[float]], bev_shape: Optional[Sequence[int]],
              cam_shape: Optional[Sequence[int]], geometry=None) -> Tuple[int, int]:
        """(bev, cam) in cells for a batch: its BEV grid, camera maps (V, h, w) and camera
        geometry (anything with `input_shape` and `focal()`, such as the detector's
        `CameraGeometry`); a side of an absent modality is returned as is (1 when in
        metres)."""
        bev, cam = self.bev, self.cam
        if self.bev_in_metres:
            if pc_range is None:
                raise ValueError('a BEV window in metres needs the point-cloud range')
            bev = odd_cells(self.bev, bev_cell_size(pc_range, bev_shape)) if bev_shape is not None else 1
        if self.cam_in_metres:
            if cam_shape is None or geometry is None:
                cam = 1
            else:
                stride = float(geometry.input_shape[1]) / float(cam_shape[2])
                cam = odd_cells(self.cam, self.cam_reference_depth * stride / geometry.focal())
        return bev, cam
