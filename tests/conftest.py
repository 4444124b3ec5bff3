"""Shared fixtures: one small generated nuScenes-format set, converted once per test session."""
import os
import os.path as osp
import subprocess
import sys

import pytest

# Triton kernels run in Triton's interpreter on CPU tensors: must be set before triton is
# imported (tools/gpu_check.sh sets 0 to run them compiled on a GPU)
os.environ.setdefault('TRITON_INTERPRET', '1')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# small but complete: 5 scenes (4 train + 1 val) x 4 samples, >= 10 objects so the single
# val scene holds all 10 classes, quarter-size images, 2 sweeps per keyframe
GEN_ARGS = ['--num-scenes', '5', '--samples-per-scene', '4', '--sweeps-per-sample', '2',
            '--image-size', '800', '450', '--min-objects', '10', '--max-objects', '25',
            '--lidar-azimuth-steps', '720', '--seed', '7']
SYNTHETIC_CONFIG = osp.join(REPO, 'configs/_base_/datasets/synthetic-nus-3d-multimodal.py')


def run_tool(*args, cwd=REPO):
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc


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


def load_tool(relpath):
    """Imports a script under tools/ (not a package) as a module."""
    import importlib.util
    path = osp.join(REPO, relpath)
    if osp.dirname(path) not in sys.path:   # as when run as a script: its siblings import
        sys.path.insert(0, osp.dirname(path))
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=['kernel', 'grouped'])
def window_route(request):
    """Runs a test once through the compiled CPU window kernel and once through the
    pure-PyTorch grouped-box route; see plugin/models/aqr/backends.py."""
    from plugin.models.aqr import attention_backend
    from plugin.ops import window_attention_cpu
    if request.param == 'grouped':
        with attention_backend('torch'):
            yield request.param
        return
    assert window_attention_cpu.kernel_available(), (
        f'the compiled window kernel is not importable ({window_attention_cpu.IMPORT_ERROR}); '
        'build it with `pip install --no-build-isolation --use-pep517 -e .` (tools/setup_env.sh does)')
    yield request.param
