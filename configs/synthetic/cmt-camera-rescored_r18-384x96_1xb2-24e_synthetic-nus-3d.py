# The rescored image-seeded camera-only CMT on twice the demo's schedule (24 epochs,
# ground-truth depths for the first 12).
_base_ = ['./cmt-camera-rescored_r18-384x96_1xb2-12e_synthetic-nus-3d.py']

max_epochs = 24
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], T_max=max_epochs, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
custom_hooks = [*_base_.custom_hooks[:-1], dict(_base_.custom_hooks[-1], stop_epoch=max_epochs // 2)]
