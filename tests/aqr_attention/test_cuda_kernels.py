"""The compiled Triton kernels on a CUDA GPU (skipped without one): every check of
tests/helpers/cuda_attention_checks.py, which `tools/gpu_check.sh --kernels-only` also runs
without pytest."""
import pytest
import torch

from tests.helpers.cuda_attention_checks import CHECKS


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU (tools/gpu_check.sh runs these)')
@pytest.mark.parametrize('name', list(CHECKS))
def test_cuda(name):
    CHECKS[name]()
