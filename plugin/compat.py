"""The one place for workarounds of upstream incompatibilities (keep it short).

mmdet3d 1.4's `ObjectSample` (datasets/transforms/dbsampler.py) builds arrays with
`dtype=np.long`, an alias numpy removed in 1.24; we pin numpy<2 (1.26), so restore the
alias to the type numpy.long meant (int64) until mmdet3d drops it.
"""
import warnings

import numpy as np

with warnings.catch_warnings():  # numpy 1.26 warns on the mere look-up of np.long
    warnings.simplefilter('ignore', FutureWarning)
    _missing_long = not hasattr(np, 'long')
if _missing_long:
    np.long = np.int64


def _register_trusting_local_checkpoint_loader():
    """torch >= 2.6 loads with weights_only=True by default, which rejects mmengine
    checkpoints (they carry the message hub, numpy values, ...). Checkpoints given to
    `load_from`/`--resume`/test.py are the user's own files, so local paths are loaded
    fully, as mmengine did before; other schemes (http, s3, ...) keep mmengine's loaders.
    """
    import os.path as osp

    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def load_from_local(filename, map_location):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'checkpoint {filename} can not be found.')
        return torch.load(filename, map_location=map_location, weights_only=False)


_register_trusting_local_checkpoint_loader()


def _allow_cpu_distributed():
    """mmengine 0.10's `_init_dist_pytorch` calls `torch.cuda.set_device(local_rank)` even
    for a gloo run; without CUDA that raises. Where CUDA is unavailable there is no device
    to select, so the call becomes a no-op (CPU-only distributed training, tests)."""
    import torch
    if not torch.cuda.is_available():
        torch.cuda.set_device = lambda device: None


_allow_cpu_distributed()


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
