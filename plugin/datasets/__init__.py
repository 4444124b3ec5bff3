"""Dataset-side components (dataset with input checks, transforms) registered into mmdet3d."""
from .checked_nuscenes_dataset import CheckedNuScenesDataset
from .input_checks import InputError
from .transforms import *  # noqa: F401,F403

__all__ = ['CheckedNuScenesDataset', 'InputError']
