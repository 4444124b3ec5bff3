"""The repository's paths, the generated data set's arguments, and running its tools."""
import importlib.util
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# small but complete: 5 scenes (4 train + 1 val) x 4 samples, >= 10 objects so the single
# val scene holds all 10 classes, quarter-size images, 2 sweeps per keyframe
GEN_ARGS = ['--num-scenes', '5', '--samples-per-scene', '4', '--sweeps-per-sample', '2',
            '--image-size', '800', '450', '--min-objects', '10', '--max-objects', '25',
            '--lidar-azimuth-steps', '720', '--seed', '7']
SYNTHETIC_CONFIG = osp.join(REPO, 'configs/_base_/datasets/synthetic-nus-3d-multimodal.py')


def run_tool(*args, cwd=REPO):
    """Runs `python *args` in the repository; a failure shows the end of its output."""
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc


def load_tool(relpath):
    """Imports a script under tools/ (not a package) as a module."""
    path = osp.join(REPO, relpath)
    if osp.dirname(path) not in sys.path:   # as when run as a script: its siblings import
        sys.path.insert(0, osp.dirname(path))
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
