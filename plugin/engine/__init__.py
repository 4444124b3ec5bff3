from .device_amp_optim_wrapper import DeviceAmpOptimWrapper
from .progress_bar_hook import ProgressBarHook

__all__ = ['DeviceAmpOptimWrapper', 'ProgressBarHook']
