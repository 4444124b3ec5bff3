"""Shared fixtures: one small generated nuScenes-format set, converted once per test session."""
import os

import pytest

# Triton kernels run in Triton's interpreter on CPU tensors: must be set before triton is
# imported (tools/gpu_check.sh sets 0 to run them compiled on a GPU)
os.environ.setdefault('TRITON_INTERPRET', '1')

from tests.helpers.repo import GEN_ARGS, SYNTHETIC_CONFIG, run_tool  # noqa: E402


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """A generated and converted data set: its root (with info files) as a str."""
    root = str(tmp_path_factory.mktemp('synthetic_nuscenes'))
    run_tool('tools/create_synthetic_nuscenes.py', '--out', root, *GEN_ARGS)
    run_tool('tools/create_data.py', 'nuscenes', '--root-path', root, '--out-dir', root,
             '--extra-tag', 'nuscenes', '--version', 'v1.0-mini')
    return root


@pytest.fixture(scope='session')
def nusc(synthetic_root):
    from nuscenes import NuScenes
    return NuScenes(version='v1.0-mini', dataroot=synthetic_root, verbose=False)


@pytest.fixture(scope='session')
def synthetic_cfg(synthetic_root):
    """The synthetic dataset config pointed at the test's data root."""
    from mmengine.config import Config
    cfg = Config.fromfile(SYNTHETIC_CONFIG)
    root = synthetic_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    for ev in ('val_evaluator', 'test_evaluator'):
        cfg[ev].data_root = root
        cfg[ev].ann_file = root + 'nuscenes_infos_val.pkl'
    return cfg


@pytest.fixture(params=['kernel', 'grouped'])
def window_route(request):
    """Runs a test once through the compiled CPU window kernel and once through the
    pure-PyTorch grouped-box route; see aqr_attention/backends.py."""
    from aqr_attention import attention_backend, window_attention_cpu
    if request.param == 'grouped':
        with attention_backend('torch'):
            yield request.param
        return
    assert window_attention_cpu.kernel_available(), (
        f'the compiled window kernel is not importable ({window_attention_cpu.IMPORT_ERROR}); '
        'build it with `pip install --no-build-isolation --use-pep517 -e .` (tools/setup_env.sh does)')
    yield request.param


@pytest.fixture(scope='module')
def synthetic_cmt_cfg():
    """The synthetic CMT config (tests copy it before changing it)."""
    from mmengine.config import Config

    from tests.helpers.tiny_cmt import CONFIG
    return Config.fromfile(CONFIG)
