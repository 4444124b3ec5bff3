"""GT-paste for the first N epochs only, also across `--resume`.

Official CMT trains its published models 15 epochs with GT-paste and 5 without. mmdet3d's
`DisableObjectSampleHook(disable_after_epoch=N)` switches `ObjectSample` (and its
subclasses) off in the epoch equal to N only: a run resumed from a checkpoint of a later
epoch would paste again for the rest of training. This subclass also switches it off in
the first epoch of a run that starts past N, and otherwise leaves mmdet3d's hook to do its
work (including the restart of persistent data-loader workers).
"""
from mmdet3d.engine.hooks import DisableObjectSampleHook
from mmdet3d.registry import HOOKS


@HOOKS.register_module()
class ResumableDisableObjectSampleHook(DisableObjectSampleHook):

    def __init__(self, disable_after_epoch: int = 15):
        super().__init__(disable_after_epoch)
        self._switched = False

    def before_train_epoch(self, runner):
        switch_at = self.disable_after_epoch
        if not self._switched and runner.epoch > switch_at:
            self.disable_after_epoch = runner.epoch   # the parent switches in "its" epoch
            try:
                super().before_train_epoch(runner)
            finally:
                self.disable_after_epoch = switch_at
        else:
            super().before_train_epoch(runner)
        self._switched = self._switched or runner.epoch >= switch_at
