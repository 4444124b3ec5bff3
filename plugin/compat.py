"""Workarounds of upstream incompatibilities, applied where they are needed.

Importing `plugin` changes no global behaviour: `apply()` is called by the command-line
entry points (tools/mmdet3d_tool.py for train.py / test.py, tools/robustness_eval.py), and
the one transform that needs numpy's old alias calls `restore_numpy_long()` itself.
Registering `CPUDistributedDataParallel` only adds a model wrapper type.
"""
import os.path as osp
import warnings

import numpy as np


def restore_numpy_long():
    """mmdet3d 1.4's `DataBaseSampler` (datasets/transforms/dbsampler.py, behind
    `ObjectSample`) builds arrays with `dtype=np.long`, an alias numpy removed in 1.24 (we
    pin numpy<2): restore it as the int64 it meant, until mmdet3d drops it."""
    with warnings.catch_warnings():  # numpy 1.26 warns on the mere look-up of np.long
        warnings.simplefilter('ignore', FutureWarning)
        missing = not hasattr(np, 'long')
    if missing:
        np.long = np.int64


def trust_local_checkpoints():
    """torch >= 2.6 loads with weights_only=True by default, which rejects mmengine
    checkpoints (they carry the message hub, numpy values, ...). The checkpoints a user
    names on the command line (`load_from`, `--resume`, test.py's CHECKPOINT, a config's
    pretrained file) are their own files, so the tools load local paths fully, as mmengine
    did before; other schemes (http, s3, ...) keep mmengine's loaders."""
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def load_from_local(filename, map_location):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'checkpoint {filename} can not be found.')
        return torch.load(filename, map_location=map_location, weights_only=False)


def allow_cpu_distributed():
    """mmengine 0.10's `_init_dist_pytorch` calls `torch.cuda.set_device(local_rank)` even
    for a gloo run; without CUDA that raises. Where CUDA is unavailable there is no device
    to select, so the tools make the call a no-op (CPU-only distributed training, tests)."""
    import torch
    if not torch.cuda.is_available():
        torch.cuda.set_device = lambda device: None


def apply():
    """Every workaround above, for a command-line run."""
    restore_numpy_long()
    trust_local_checkpoints()
    allow_cpu_distributed()


def _register_cpu_ddp():
    """mmengine's Runner hands `device_ids=[LOCAL_RANK]` to every DistributedDataParallel
    wrapper, which torch rejects for a CPU module. tools/train.py selects this wrapper
    (model_wrapper_cfg) when CUDA is unavailable; it drops device_ids."""
    from mmengine.model import MMDistributedDataParallel
    from mmengine.registry import MODEL_WRAPPERS

    @MODEL_WRAPPERS.register_module(force=True)
    class CPUDistributedDataParallel(MMDistributedDataParallel):
        def __init__(self, module, device_ids=None, **kwargs):
            super().__init__(module=module, device_ids=None, **kwargs)


_register_cpu_ddp()
