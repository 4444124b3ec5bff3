"""Checks a loaded config before anything is built, with errors that name the config key.

mmengine reports an unknown `type` only when (and deep inside where) it is built, as
"X is not in the mmdet3d::model registry", without the config key or what was meant; a
negative learning rate or an inverted point cloud range is not reported at all. Both
`tools/train.py` and `tools/test.py` run `check_config` on the merged config (after
`--cfg-options`), so a typo fails in a second with, e.g.:

    model.pts_bbox_head.type: 'CmtHaed' is not a registered type; did you mean 'CmtHead'?
"""
import difflib
import math
from typing import Any, Iterator, List, Tuple

from mmengine.config import Config, ConfigDict


class ConfigError(ValueError):
    """A config value that cannot work; the message starts with the dotted key."""


def _walk(node: Any, path: str = '') -> Iterator[Tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f'{path}.{key}' if path else str(key)
            yield sub, value
            yield from _walk(value, sub)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            sub = f'{path}[{i}]'
            yield sub, value
            yield from _walk(value, sub)


def _registries() -> list:
    import mmdet3d.registry as mm3d_registry
    from mmengine.registry import Registry
    return [reg for reg in vars(mm3d_registry).values() if isinstance(reg, Registry)]


def _known_names(registries: list) -> List[str]:
    """Every name a `type` may take: each registry, its ancestors and its scoped children."""
    names = set()
    for reg in registries:
        node = reg
        while node is not None:
            names.update(node.module_dict)
            node = node.parent
        for scope, child in reg.children.items():
            names.update(f'{scope}.{name}' for name in child.module_dict)
    return sorted(names)


def _lookup(registry, name: str):
    """registry.get(name), None if the registry cannot even import its modules (mmdet3d 1.4's
    INFERENCERS points at a module 'mmdet3d.api' that does not exist)."""
    try:
        return registry.get(name)
    except ImportError:
        return None


def check_types(cfg: Config) -> None:
    """Every string `type` in the config must name a registered class or function."""
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    registries = _registries()
    for path, value in _walk(cfg.to_dict() if isinstance(cfg, Config) else cfg):
        if not path.endswith('.type') and path != 'type' or not isinstance(value, str):
            continue
        if any(_lookup(reg, value) is not None for reg in registries):
            continue
        close = difflib.get_close_matches(value, _known_names(registries), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else (
            '; no registered name is close (is the module imported through custom_imports?)')
        raise ConfigError(f'{path}: {value!r} is not a registered type{hint}')


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(path, value):
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise ConfigError(f'{path}: must be an integer >= 1, got {value!r}')


def _non_negative_int(path, value):
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise ConfigError(f'{path}: must be an integer >= 0, got {value!r}')


def _positive(path, value):
    if not (_is_number(value) and value > 0):
        raise ConfigError(f'{path}: must be a finite number > 0, got {value!r}')


def _non_negative(path, value):
    if not (_is_number(value) and value >= 0):
        raise ConfigError(f'{path}: must be a finite number >= 0, got {value!r}')


def _probability(path, value):
    if not (_is_number(value) and 0 <= value <= 1):
        raise ConfigError(f'{path}: must be a probability in [0, 1], got {value!r}')


def _window(path, value):
    _positive_int(path, value)
    if value % 2 == 0:
        raise ConfigError(f'{path}: a window centred on its cell needs an odd size, got {value}')


def _range(path, value):
    if not (isinstance(value, (list, tuple)) and len(value) == 6 and all(_is_number(v) for v in value)):
        raise ConfigError(f'{path}: must be 6 finite numbers [x_min, y_min, z_min, x_max, y_max, z_max], '
                          f'got {value!r}')
    if not all(value[i] < value[i + 3] for i in range(3)):
        raise ConfigError(f'{path}: every minimum must be below its maximum, got {list(value)}')


def _voxel(path, value):
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v) and v > 0 for v in value)):
        raise ConfigError(f'{path}: must be 3 finite sizes > 0 (x, y, z metres), got {value!r}')


# the last key of a dotted path -> its check, applied wherever the key appears ...
_CHECKS = {
    'batch_size': _positive_int, 'num_workers': _non_negative_int, 'max_epochs': _positive_int,
    'max_iters': _positive_int, 'val_interval': _positive_int, 'num_query': _positive_int,
    'num_heads': _positive_int, 'embed_dims': _positive_int, 'num_layers': _positive_int,
    'lr': _positive, 'weight_decay': _non_negative, 'max_norm': _positive,
    'bias_scale': _non_negative, 'flip_ratio_bev_horizontal': _probability,
    'flip_ratio_bev_vertical': _probability, 'flip_prob': _probability, 'lidar_prob': _probability,
    'camera_prob': _probability, 'attn_drop': _probability, 'proj_drop': _probability,
    'dropout': _probability, 'point_cloud_range': _range, 'pc_range': _range, 'voxel_size': _voxel,
}
# ... or only under a prefix (LogProcessor's window_size is a number of iterations)
_MODEL_CHECKS = {'window_size': _window, 'bev_window_size': _window, 'cam_window_size': _window}


def check_values(cfg: Config) -> None:
    """Numeric keys (batch sizes, epochs, learning rate, ranges, window sizes...) are valid."""
    for path, value in _walk(cfg.to_dict() if isinstance(cfg, Config) else cfg):
        key = path.rsplit('.', 1)[-1]
        check = _CHECKS.get(key) or (_MODEL_CHECKS.get(key) if path.startswith('model.') else None)
        if check is not None and not isinstance(value, (dict, ConfigDict)) and value is not None:
            check(path, value)


def check_config(cfg: Config) -> None:
    """All checks; imports `custom_imports` first so the project's types are registered."""
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    check_values(cfg)
    check_types(cfg)
