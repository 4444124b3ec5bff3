"""Dataset-side components (transforms) registered into mmdet3d."""
from .transforms import *  # noqa: F401,F403
