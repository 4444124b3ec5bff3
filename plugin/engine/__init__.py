from .device_amp_optim_wrapper import DeviceAmpOptimWrapper
from .progress_bar_hook import ProgressBarHook
from .random_state_hook import RandomStateHook

__all__ = ['DeviceAmpOptimWrapper', 'ProgressBarHook', 'RandomStateHook']
