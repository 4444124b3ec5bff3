"""MMDetection3D plugin: CMT camera+LiDAR detector with AQR attention bias.

`import plugin` (or `custom_imports=dict(imports=['plugin'])` in a config) registers
every component of this project into the mmdet3d registries.
"""
from . import compat  # noqa: F401  (workarounds: applied by the tools, see compat.py)
from . import datasets  # noqa: F401
from . import engine  # noqa: F401
from . import models  # noqa: F401
