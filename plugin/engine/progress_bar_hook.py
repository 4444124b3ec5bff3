"""A progress bar (tqdm, on stderr, main process only) over training iterations and over
validation / test batches, with the running loss and an ETA.

mmengine only logs every `interval` iterations; a user watching a CPU run wants to see
it move. Enable with `custom_hooks = [dict(type='ProgressBarHook')]`.
"""
import sys
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from tqdm import tqdm

from mmdet3d.registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """Args: smoothing: tqdm's rate smoothing (0 = average over the whole run)."""

    priority = 'VERY_LOW'

    def __init__(self, smoothing: float = 0.1):
        self.smoothing = smoothing
        self._bar: Optional[tqdm] = None
        self._eval: Optional[tqdm] = None

    def _open(self, total: int, initial: int, desc: str):
        self._close()
        self._bar = tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, dynamic_ncols=True,
                         smoothing=self.smoothing, disable=not is_main_process(), leave=True)

    def _close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def before_train(self, runner) -> None:
        self._open(runner.max_iters, runner.iter, 'train')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._bar is None:
            return
        if outputs and 'loss' in outputs:
            self._bar.set_postfix(epoch=runner.epoch + 1, loss=f"{outputs['loss'].item():.3f}", refresh=False)
        self._bar.update(1)

    def after_train(self, runner) -> None:
        self._close()

    def _open_eval(self, runner, loop: str, desc: str):
        # evaluation gets its own bar below the (kept) training bar
        total = len(getattr(runner, loop).dataloader)
        self._eval = tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True,
                          disable=not is_main_process(), leave=False)

    def before_val_epoch(self, runner) -> None:
        self._open_eval(runner, 'val_loop', 'val')

    def before_test_epoch(self, runner) -> None:
        self._open_eval(runner, 'test_loop', 'test')

    def _step_eval(self):
        if self._eval is not None:
            self._eval.update(1)
            if self._eval.n >= self._eval.total:  # close before the metric prints its tables
                self._eval.close()
                self._eval = None

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step_eval()

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step_eval()
