# The demo config on a 30-epoch schedule (2.5x the demo's training time):
#   CONFIG=configs/synthetic/cmt_pillar080_r18-256x144_1xb2-30e_synthetic-nus-3d.py bash tools/demo.sh
_base_ = ['./cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py']

max_epochs = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
