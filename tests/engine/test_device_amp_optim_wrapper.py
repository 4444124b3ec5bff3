"""`DeviceAmpOptimWrapper` autocasts bf16 on CPU only where it is native."""
import warnings

import pytest
import torch
from mmengine.registry import init_default_scope

import plugin  # noqa: F401


@pytest.mark.parametrize('native', [True, False], ids=['native_bf16', 'emulated_bf16'])
def test_device_amp_optim_wrapper_autocasts_bf16_on_cpu(native, monkeypatch):
    """bfloat16 autocast on a CPU that has it natively; float32 and one warning naming the
    CPU capability on one that would emulate it."""
    from mmdet3d.registry import OPTIM_WRAPPERS
    from plugin.engine import device_amp_optim_wrapper
    monkeypatch.setattr(device_amp_optim_wrapper, 'cpu_has_native_bf16', lambda: native)
    init_default_scope('mmdet3d')
    model = torch.nn.Linear(4, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        wrapper = OPTIM_WRAPPERS.build(dict(type='DeviceAmpOptimWrapper',
                                            optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    messages = [str(w.message) for w in caught if 'DeviceAmpOptimWrapper' in str(w.message)]
    assert len(messages) == (0 if native else 1)
    if not native:
        assert torch.backends.cpu.get_cpu_capability() in messages[0] and 'float32' in messages[0]
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    wrapper.update_params(out.float().square().mean())
    assert not torch.equal(model.weight, before)
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    wrapper.load_state_dict(dict(state, loss_scaler={}))   # a GPU run's checkpoint loads
    with pytest.raises(ValueError, match='bfloat16'):
        OPTIM_WRAPPERS.build(dict(type='DeviceAmpOptimWrapper', dtype='float16',
                                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
