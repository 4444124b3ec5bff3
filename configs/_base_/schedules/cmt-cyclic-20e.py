# CMT's recipe: AdamW 1e-4 (weight decay 0.01), image backbone lr x0.01, gradient clip 35,
# cyclic learning rate (cosine up to 10x over 40% of the run, then down), 20 epochs.
lr = 1e-4
max_epochs = 20
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.01),
    paramwise_cfg=dict(custom_keys=dict(img_backbone=dict(lr_mult=0.01))),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=0.4 * max_epochs, eta_min=lr * 10, begin=0,
         end=0.4 * max_epochs, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=0.6 * max_epochs, eta_min=lr * 1e-4,
         begin=0.4 * max_epochs, end=max_epochs, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', T_max=0.4 * max_epochs, eta_min=0.85 / 0.95, begin=0,
         end=0.4 * max_epochs, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', T_max=0.6 * max_epochs, eta_min=1, begin=0.4 * max_epochs,
         end=max_epochs, by_epoch=True, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
