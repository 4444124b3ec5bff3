"""Ground-truth depths for the camera queries in the first epochs, also across `--resume`.

As Far3D's `UseGtDepthHook` (Jiang et al., AAAI 2024): early in training the predicted
depth of a camera peak is noise, so the query lifted to it starts far from its object and
the decoder learns little from it. Until `stop_epoch` every module with a `use_gt_depth`
attribute (`CameraPeakQueries`) lifts the peaks on ground-truth centres to their true
depth; from then on, to the predicted one. The switch is a function of the runner's epoch,
set before every training iteration, so a run resumed from any checkpoint uses the same
depths as an uninterrupted one.
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet3d.registry import HOOKS


@HOOKS.register_module()
class UseGtDepthHook(Hook):
    """Args:
        stop_epoch: the first epoch (0-based, as `runner.epoch`) that uses predicted depths.
    """
    priority = 'NORMAL'

    def __init__(self, stop_epoch: int):
        if stop_epoch < 0:
            raise ValueError(f'UseGtDepthHook.stop_epoch must be >= 0, got {stop_epoch}')
        self.stop_epoch = int(stop_epoch)
        self._modules = None

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._modules = [m for m in model.modules() if hasattr(m, 'use_gt_depth')]
        if not self._modules:
            raise ValueError('UseGtDepthHook: the model has no module that lifts queries to ground-truth depths '
                             "(e.g. pts_bbox_head.query_generator=dict(type='CameraPeakQueries', ...))")

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        use = runner.epoch < self.stop_epoch
        for module in self._modules:
            module.use_gt_depth = use
