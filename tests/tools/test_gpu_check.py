"""tools/gpu_check.sh on a CPU-only machine: its syntax, its arguments, the commands it
would run (checked against the tools they call) and its refusal without a GPU."""
import os
import os.path as osp
import shlex
import subprocess
import sys

import pytest
import torch

from tests.helpers.repo import REPO

SCRIPT = osp.join(REPO, 'tools', 'gpu_check.sh')


def run(*args, env=None):
    return subprocess.run(['bash', SCRIPT, *args], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


def test_syntax_and_help():
    assert subprocess.run(['bash', '-n', SCRIPT]).returncode == 0
    res = run('--help')
    assert res.returncode == 0
    for word in ('tests', 'bench', 'train', 'gpu_check.md', '--dry-run', '--kernels-only'):
        assert word in res.stdout


def test_dry_run_lists_the_three_steps():
    res = run('--dry-run', '--python', sys.executable)
    assert res.returncode == 0, res.stderr
    cmds = dict(line.split(': ', 1) for line in res.stdout.strip().splitlines())
    assert set(cmds) == {'tests', 'bench', 'train'}
    assert cmds['tests'].startswith('TRITON_INTERPRET=0 ') and 'test_cuda_kernels.py' in cmds['tests']
    assert '--device cuda' in cmds['bench'] and '--batches 1 2 4' in cmds['bench']
    assert '--dtypes float16 bfloat16 float32' in cmds['bench']
    assert '--amp' in cmds['train'] and 'cmt-aqr_pillar080' in cmds['train']
    assert run('--dry-run', '--steps', 'bench').stdout.startswith('bench: ')


def test_kernels_only_needs_torch_and_triton_alone():
    """--kernels-only runs the CUDA checks as a plain module and a shorter benchmark; both
    import with the OpenMMLab stack and pytest blocked."""
    res = run('--kernels-only', '--dry-run', '--python', sys.executable)
    cmds = dict(line.split(': ', 1) for line in res.stdout.strip().splitlines())
    assert set(cmds) == {'kernels', 'bench'}
    assert cmds['kernels'].endswith('-m tests.helpers.cuda_attention_checks')
    assert '--batches 1 2' in cmds['bench'] and '--grouped-windows' not in cmds['bench']
    blocker = ('import importlib.abc, sys, runpy\n'
               'class B(importlib.abc.MetaPathFinder):\n'
               '    def find_spec(self, name, path=None, target=None):\n'
               '        if name.split(".")[0] in ("mmcv", "mmdet", "mmdet3d", "mmengine", "plugin", "pytest"):\n'
               '            raise ImportError("blocked: " + name)\n'
               'sys.meta_path.insert(0, B())\n')
    for code in ('import tests.helpers.cuda_attention_checks as m; assert m.main() == (0 if '
                 '__import__("torch").cuda.is_available() else 1)',
                 'sys.path.insert(0, "tools/benchmark")\n'
                 'runpy.run_path("tools/benchmark/attention_bias.py")["make_inputs"](1, 5, "cpu")'):
        res = subprocess.run([sys.executable, '-c', blocker + code], cwd=REPO, capture_output=True, text=True)
        assert 'blocked' not in res.stderr and res.returncode == 0, res.stderr[-2000:]


def test_the_commands_it_runs_are_valid():
    """The pytest selection is exactly the CUDA tests, and the benchmark accepts its
    arguments."""
    cmds = dict(line.split(': ', 1) for line in run('--dry-run', '--python', sys.executable).stdout.splitlines())
    pytest_args = shlex.split(cmds['tests'])[4:]          # after 'TRITON_INTERPRET=0 PY -m pytest'
    res = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', *pytest_args], cwd=REPO,
                         capture_output=True, text=True)
    collected = [line for line in res.stdout.splitlines() if '::' in line]
    assert collected and all('cuda' in line for line in collected), res.stdout[-2000:]
    bench = [w for w in shlex.split(cmds['bench']) if not w.startswith('TRITON_INTERPRET=')]
    res = subprocess.run([*bench, '--help'], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_bad_arguments_and_no_gpu():
    assert run('--bogus').returncode == 2
    assert run('--steps', 'tests,nope').returncode == 2
    if torch.cuda.is_available():
        pytest.skip('a GPU is visible')
    res = run('--python', sys.executable, '--out', 'work_dirs/gpu_check_cpu_test')
    assert res.returncode == 1 and 'no CUDA device' in res.stderr
