"""Saves and restores the random generators with each checkpoint, for exact resume.

mmengine's `--resume` restores the weights, optimizer, schedulers and epoch, and re-seeds
from the config's seed - but the process-wide generators (Python, numpy, torch CPU and
CUDA) then restart from the seed instead of continuing where the interrupted run was, so
everything they drive after the resume point (query denoising noise, dropout, augmentation
in the main process) differs from an uninterrupted run. This hook stores their states in
the checkpoint (`checkpoint['random_state']`) and restores them when, and only when, the
run resumes (a `load_from` fine-tune keeps the config's seed). DataLoader workers need
nothing: mmengine seeds them from the seed, the rank and the worker id.
"""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmdet3d.registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['random_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # mmengine keeps whether this load is a resume only in a private attribute
        state = checkpoint.get('random_state')
        if state is None or not getattr(runner, '_resume', False):
            return
        random.setstate(state['python'])
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
