"""UseGtDepthHook: ground-truth depths until `stop_epoch`, the same on every iteration of a
run resumed from a checkpoint as in an uninterrupted run."""
import pytest
import torch
from torch import nn

import plugin  # noqa: F401


class _Lifter(nn.Module):
    """A stand-in for a query generator: records the flag each training step sees."""

    def __init__(self):
        super().__init__()
        self.use_gt_depth = False
        self.seen = []


def _model():
    from mmengine.model import BaseModel

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            self.lifter = _Lifter()
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode='loss'):
            self.lifter.seen.append(self.lifter.use_gt_depth)
            return dict(loss=self.linear(inputs).pow(2).mean())
    return Model()


def _runner(work_dir, max_epochs, resume=False):
    from mmengine.runner import Runner
    return Runner(model=_model(), work_dir=str(work_dir),
                  train_dataloader=dict(dataset=[dict(inputs=torch.ones(2))] * 4, sampler=dict(type='DefaultSampler', shuffle=False),
                                        batch_size=2, collate_fn=dict(type='default_collate')),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
                  train_cfg=dict(by_epoch=True, max_epochs=max_epochs), resume=resume,
                  custom_hooks=[dict(type='UseGtDepthHook', stop_epoch=2)],
                  default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
                  default_scope='mmdet3d', experiment_name=f'gt_depth_{work_dir.name}_{max_epochs}_{resume}')


def test_switches_at_stop_epoch_and_resumes_exactly(tmp_path):
    from plugin import compat
    compat.trust_local_checkpoints()   # as tools/train.py does for the user's own checkpoints
    whole = _runner(tmp_path / 'whole', 4)
    whole.train()
    assert whole.model.lifter.seen == [True] * 4 + [False] * 4      # 2 iterations per epoch
    _runner(tmp_path / 'cut', 1).train()                             # stops after epoch 0
    resumed = _runner(tmp_path / 'cut', 4, resume=True)
    resumed.model.lifter.use_gt_depth = False                        # whatever the fresh model says
    resumed.train()
    assert resumed.model.lifter.seen == whole.model.lifter.seen[2:]


def test_a_model_without_camera_queries_is_an_error():
    from mmengine.registry import init_default_scope
    from mmdet3d.registry import HOOKS
    from types import SimpleNamespace
    init_default_scope('mmdet3d')
    hook = HOOKS.build(dict(type='UseGtDepthHook', stop_epoch=1))
    with pytest.raises(ValueError, match='CameraPeakQueries'):
        hook.before_train(SimpleNamespace(model=nn.Linear(1, 1)))
    with pytest.raises(ValueError, match='stop_epoch'):
        HOOKS.build(dict(type='UseGtDepthHook', stop_epoch=-1))
