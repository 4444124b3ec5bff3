"""The Triton kernels compiled for real GPU targets, without a GPU
(`aqr_attention/triton_compile.py`: `triton.compile` for GPUTarget('cuda', 80 | 90, 32) and
the triton wheel's own ptxas). Triton's interpreter, which runs the numerical tests on
CPU, never compiles the kernels, so this is where a kernel that cannot compile, spills
registers or overflows shared memory is caught.

Default run: every kernel for sm_80 and sm_90, float16 / bfloat16 / float32 / float64,
with and without the key-padding mask, at the configs' head width (32), through the
launcher's own block / warp / stage choice. `-m slow`: the same at head widths 16, 64 and
128.
"""
import json
import os
import subprocess
import sys

import pytest

from aqr_attention.triton_configs import CAPABILITIES, KERNELS
from tests.helpers.repo import REPO

DTYPES = ('float16', 'bfloat16', 'float32', 'float64')


def compile_grid(head_dims):
    """Runs the compiler in processes of their own (the kernels must not be interpreted),
    one per architecture, side by side: {(kernel, 'sm_XY', dtype, head_dim, mask): result}."""
    env = dict(os.environ, TRITON_INTERPRET='0')
    cmds = [[sys.executable, '-W', 'ignore', '-m', 'aqr_attention.triton_compile', '--json', '--capabilities',
             f'{a}{b}', '--head-dims', *map(str, head_dims)] for a, b in CAPABILITIES]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for cmd in cmds]
    rows = []
    for cmd, proc in zip(cmds, procs):
        out, err = proc.communicate()
        found = [json.loads(line) for line in out.splitlines() if line.startswith('{')]
        assert found, f'no result from {" ".join(cmd)}:\n{err[-3000:]}'
        rows += found
    return {(r['kernel'], 'sm_%d%d' % tuple(r['capability']), r['dtype'], r['head_dim'], r['has_mask']): r
            for r in rows}


def _cases(head_dims):
    return [(k, f'sm_{a}{b}', dt, d, m) for a, b in CAPABILITIES for dt in DTYPES for d in head_dims
            for m in (False, True) for k in KERNELS]


def _check(result):
    assert result['error'] is None, result['error']
    assert result['shared_bytes'] <= result['shared_limit'], (
        f"{result['shared_bytes']} B of shared memory, over the architecture's {result['shared_limit']} B")
    if result['dtype'] != 'float64':
        assert result['spill_bytes'] == 0, f"{result['spill_bytes']} B of register spills ({result})"
    assert result['ok']


@pytest.fixture(scope='module')
def grid32():
    return compile_grid([32])


@pytest.mark.parametrize('case', _cases([32]), ids=lambda c: '-'.join(map(str, c)))
def test_compiles_without_spills_within_shared_memory(grid32, case):
    _check(grid32[case])


@pytest.fixture(scope='module')
def grid_wide():
    return compile_grid([16, 64, 128])


@pytest.mark.slow
@pytest.mark.parametrize('case', _cases([16, 64, 128]), ids=lambda c: '-'.join(map(str, c)))
def test_wide_heads_compile_without_spills_within_shared_memory(grid_wide, case):
    _check(grid_wide[case])


def test_the_check_catches_spills_and_shared_memory_overflow():
    """64 x 64 blocks with 3 stages, the tutorial's half-precision launch, spill registers
    in float32 and overflow even an A100's shared memory in float64 (with the key-padding
    mask): the check reports both."""
    code = ('from aqr_attention.triton_compile import compile_kernels\n'
            'from aqr_attention.triton_configs import KernelConfig, KERNELS\n'
            'import json, torch\n'
            'cfg = {k: KernelConfig(64, 64, 4, 3) for k in KERNELS}\n'
            'for dt in (torch.float32, torch.float64):\n'
            '    r = [x for x in compile_kernels((8, 0), dt, 32, True, cfg) if x.kernel == "backward_kv"][0]\n'
            '    print(json.dumps(dict(r._asdict(), ok=r.ok)))\n')
    res = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, TRITON_INTERPRET='0'))
    fp32, fp64 = [json.loads(line) for line in res.stdout.splitlines() if line.startswith('{')]
    assert fp32['error'] is None and fp32['spill_bytes'] > 0 and not fp32['ok']
    assert fp64['shared_bytes'] > 166912 and not fp64['ok']


def test_interpreted_kernels_are_refused():
    res = subprocess.run([sys.executable, '-W', 'ignore', '-m', 'aqr_attention.triton_compile', '--head-dims', '32'],
                         cwd=REPO, capture_output=True, text=True, env=dict(os.environ, TRITON_INTERPRET='1'))
    assert res.returncode != 0 and 'TRITON_INTERPRET' in res.stderr
