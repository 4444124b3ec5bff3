"""`init_cfg=dict(type='PretrainedIfExists', checkpoint=PATH)`: mmengine's Pretrained
initialiser when the local file exists, random initialisation with a warning otherwise.

Full nuScenes configs name the official pretrained backbones; on a machine without them
(or without internet) the same config still builds, trains and tests.
"""
import os.path as osp
import warnings

from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import WEIGHT_INITIALIZERS


@WEIGHT_INITIALIZERS.register_module()
class PretrainedIfExists(PretrainedInit):

    def __call__(self, module):
        if osp.isfile(osp.expanduser(self.checkpoint)):
            return super().__call__(module)
        warnings.warn(f'{type(module).__name__}: pretrained weights {self.checkpoint} not found; '
                      'keeping the random initialisation')
