"""Exact resume: a run killed after its epoch-1 checkpoint and restarted with resume ends
with the same weights as an uninterrupted run (CPU, deterministic), which needs the
random state hook."""
import copy

import pytest
import torch
from mmengine.hooks import Hook

from mmdet3d.registry import HOOKS
from tests.helpers.tiny_cmt import tiny_cfg


class Killed(RuntimeError):
    pass


@HOOKS.register_module(force=True)
class KillAfterEpochHook(Hook):
    """Stands in for a crash after the checkpoint of epoch `epoch` is on disk."""
    priority = 'LOWEST'      # after CheckpointHook (VERY_LOW) has saved

    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            raise Killed(f'killed after epoch {self.epoch}')


def _train(cfg, work_dir, resume=False, kill_after=None):
    from mmengine.runner import Runner

    from plugin import compat
    compat.trust_local_checkpoints()   # as tools/train.py does for the user's own checkpoints
    cfg = copy.deepcopy(cfg)
    cfg.work_dir, cfg.resume = str(work_dir), resume
    cfg.experiment_name = f'resume_{work_dir.name}_{int(resume)}'
    cfg.visualizer.name = cfg.experiment_name
    if kill_after is not None:
        cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='KillAfterEpochHook', epoch=kill_after)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


@pytest.fixture(scope='module', autouse=True)
def restore_determinism():
    """randomness.deterministic=True makes mmengine switch torch to deterministic algorithms
    process-wide; the rest of the suite must not run (slowly) under that setting."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture(scope='module')
def cfg(synthetic_root):
    cfg = tiny_cfg(synthetic_root)
    cfg.train_cfg.max_epochs = 2
    cfg.train_cfg.val_interval = 100           # no validation: this is about training state
    cfg.param_scheduler[1].T_max = 2
    cfg.param_scheduler[1].end = 2
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.custom_hooks = []
    # 4 training samples: 2 iterations per epoch, shuffled by the sampler's seed; query
    # denoising on (its noise comes from the global torch generator), augmentation in the
    # main process (numpy)
    cfg.train_dataloader.dataset.indices = 4
    return cfg


@pytest.fixture(scope='module')
def uninterrupted(cfg, tmp_path_factory):
    return _train(cfg, tmp_path_factory.mktemp('uninterrupted'))


def _resumed(cfg, work_dir):
    with pytest.raises(Killed):
        _train(cfg, work_dir, kill_after=1)
    assert (work_dir / 'epoch_1.pth').is_file() and not (work_dir / 'epoch_2.pth').exists()
    return _train(cfg, work_dir, resume=True)


def test_resume_after_a_crash_gives_the_uninterrupted_weights(cfg, uninterrupted, tmp_path):
    resumed = _resumed(cfg, tmp_path)
    assert resumed.keys() == uninterrupted.keys()
    different = [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])]
    assert not different, different[:5]


def test_without_the_random_state_hook_resume_drifts(cfg, uninterrupted, tmp_path):
    """The control: mmengine alone restarts the generators from the seed at the resume."""
    cfg = copy.deepcopy(cfg)
    cfg.default_hooks.pop('random_state')
    resumed = _resumed(cfg, tmp_path)
    weights = [k for k, v in resumed.items() if v.is_floating_point()]
    assert any(not torch.equal(resumed[k], uninterrupted[k]) for k in weights)
