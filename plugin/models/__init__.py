"""Model components registered into mmdet3d's MODELS / TASK_UTILS registries."""
from .aqr import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .dense_heads import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .query_generators import *  # noqa: F401,F403
from .task_modules import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
