"""The training progress bar (`ProgressBarHook`)."""
import io
from types import SimpleNamespace

import torch

import plugin  # noqa: F401
from plugin.engine import ProgressBarHook


def test_progress_bar_hook_counts_iterations(monkeypatch):
    import plugin.engine.progress_bar_hook as mod
    err = io.StringIO()
    monkeypatch.setattr(mod.sys, 'stderr', err)
    hook = ProgressBarHook()
    runner = SimpleNamespace(max_iters=5, iter=1, epoch=0, val_loop=SimpleNamespace(dataloader=[0, 1, 2]))
    hook.before_train(runner)
    for i in range(4):
        hook.after_train_iter(runner, i, outputs=dict(loss=torch.tensor(1.5 - i * 0.1)))
    assert hook._bar.n == 5
    hook.before_val_epoch(runner)
    for i in range(3):
        hook.after_val_iter(runner, i)
    assert hook._eval is None                             # closed once every batch is done
    hook.after_train(runner)
    text = err.getvalue()
    assert '5/5' in text and 'loss=1.200' in text and 'val' in text
