"""Validation of AQR window sizes: odd side lengths, in cells / feature pixels, so that a
window is centred on its query's cell."""
from typing import Sequence, Tuple, Union

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
