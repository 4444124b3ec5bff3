"""aqr_attention imports and computes with torch alone (and triton where installed): a GPU
machine with PyTorch but without the OpenMMLab stack checks the kernels with it."""
import os
import subprocess
import sys

from tests.helpers.repo import REPO

BLOCKED = ('mmcv', 'mmdet', 'mmdet3d', 'mmengine', 'nuscenes', 'plugin')

CODE = f'''
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            raise ImportError('blocked: ' + name)

sys.meta_path.insert(0, Block())
import torch
import aqr_attention
from aqr_attention import triton_bias_attention, triton_compile, triton_configs  # noqa: F401
from tests.helpers import cuda_attention_checks  # noqa: F401
from tests.helpers.attention_cases import check_against_references, make_case
for backend in ('cpu_kernel', 'torch', 'triton'):
    with aqr_attention.attention_backend(backend):
        leaves, bias = make_case((5, 3), 'transposed')
        check_against_references(leaves, bias, (5, 3))
loaded = sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r})
print('loaded:', loaded)
'''


def test_the_attention_package_needs_no_openmmlab():
    env = dict(os.environ, TRITON_INTERPRET='1')
    res = subprocess.run([sys.executable, '-c', CODE], cwd=REPO, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == 'loaded: []'


def test_the_blocker_blocks():
    """The same subprocess fails on a module that needs the OpenMMLab stack."""
    code = CODE.replace('import aqr_attention\n', 'import aqr_attention\nimport plugin.models.aqr\n')
    res = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, TRITON_INTERPRET='1'))
    assert res.returncode != 0 and 'blocked: plugin' in res.stderr
