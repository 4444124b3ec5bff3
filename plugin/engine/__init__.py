from .device_amp_optim_wrapper import DeviceAmpOptimWrapper
from .progress_bar_hook import ProgressBarHook
from .random_state_hook import RandomStateHook
from .resumable_disable_object_sample_hook import ResumableDisableObjectSampleHook
from .strict_load_runner import StrictLoadRunner
from .use_gt_depth_hook import UseGtDepthHook

__all__ = ['DeviceAmpOptimWrapper', 'ProgressBarHook', 'RandomStateHook', 'ResumableDisableObjectSampleHook',
           'StrictLoadRunner', 'UseGtDepthHook']
