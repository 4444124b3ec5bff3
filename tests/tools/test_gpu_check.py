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
    for word in ('tests', 'bench', 'train', 'gpu_check.md', '--dry-run'):
        assert word in res.stdout


def test_dry_run_lists_the_three_steps():
    res = run('--dry-run', '--python', sys.executable)
    assert res.returncode == 0, res.stderr
    cmds = dict(line.split(': ', 1) for line in res.stdout.strip().splitlines())
    assert set(cmds) == {'tests', 'bench', 'train'}
    assert cmds['tests'].startswith('TRITON_INTERPRET=0 ') and '-k cuda' in cmds['tests']
    assert '--device cuda' in cmds['bench'] and '--batches 1 2 4' in cmds['bench']
    assert '--amp' in cmds['train'] and 'cmt-aqr_pillar080' in cmds['train']
    assert run('--dry-run', '--steps', 'bench').stdout.startswith('bench: ')


def test_the_commands_it_runs_are_valid():
    """The pytest selection is exactly the CUDA tests, and the benchmark accepts its
    arguments."""
    cmds = dict(line.split(': ', 1) for line in run('--dry-run', '--python', sys.executable).stdout.splitlines())
    pytest_args = shlex.split(cmds['tests'])[4:]          # after 'TRITON_INTERPRET=0 PY -m pytest'
    res = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', *pytest_args], cwd=REPO,
                         capture_output=True, text=True)
    collected = [line for line in res.stdout.splitlines() if '::' in line]
    assert collected and all('cuda' in line for line in collected), res.stdout[-2000:]
    bench = shlex.split(cmds['bench'])
    res = subprocess.run([*bench, '--help'], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_bad_arguments_and_no_gpu():
    assert run('--bogus').returncode == 2
    assert run('--steps', 'tests,nope').returncode == 2
    if torch.cuda.is_available():
        pytest.skip('a GPU is visible')
    res = run('--python', sys.executable, '--out', 'work_dirs/gpu_check_cpu_test')
    assert res.returncode == 1 and 'no CUDA device' in res.stderr
