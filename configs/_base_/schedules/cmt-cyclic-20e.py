# CMT's recipe (the official VoV-99 fusion config, 8 GPUs x 2 samples): AdamW 1e-4, weight
# decay 0.01; image backbone lr x0.01 and weight decay x5, image neck lr x0.1; gradient clip
# 35; one cycle of 20 epochs: the lr rises along a cosine to x8 over the first 40% and falls
# to x1e-4, while Adam's beta1 falls from 0.9 to 0.805 (x0.8947) and returns to 0.9.
# Ratios (eta_min_ratio), not absolute values, so that every parameter group follows its own
# base lr, and beta1 comes back to its initial value (an absolute eta_min of 1 would freeze
# Adam's first moment at the end of the schedule).
lr = 1e-4
max_epochs = 20
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys=dict(img_backbone=dict(lr_mult=0.01, decay_mult=5),
                                        img_neck=dict(lr_mult=0.1))),
    clip_grad=dict(max_norm=35, norm_type=2))
_up = dict(begin=0, end=0.4 * max_epochs, T_max=0.4 * max_epochs, by_epoch=True, convert_to_iter_based=True)
_down = dict(begin=0.4 * max_epochs, end=max_epochs, T_max=0.6 * max_epochs, by_epoch=True,
             convert_to_iter_based=True)
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min_ratio=8, **_up),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-4, **_down),
    dict(type='CosineAnnealingMomentum', eta_min_ratio=0.85 / 0.95, **_up),
    dict(type='CosineAnnealingMomentum', eta_min_ratio=1.0, **_down),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
