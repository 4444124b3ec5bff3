"""Model components registered into mmdet3d's MODELS / TASK_UTILS registries."""
from .layers import *  # noqa: F401,F403
