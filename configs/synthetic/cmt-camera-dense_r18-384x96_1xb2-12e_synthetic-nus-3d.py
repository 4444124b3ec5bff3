# The dense camera-only CMT framed on the horizon: at 256x144 a third of the camera keys
# show sky and 82 % of the val object centres fall in one feature row. Here each view is
# decoded at 1/4, scaled 1.5x relative to the 256-wide recipe (384 pixels wide, the whole
# view) and cut to a 96-row band whose bottom edge lies 18-26 % above the image's bottom
# (22 % at test time), around the horizon where the objects are: 24 x 6 stride-16 cells
# per view, the same key budget as 16 x 9. Camera flips are on (lidar2img follows them).
_base_ = ['./cmt-camera-dense_r18-256x144_1xb2-12e_synthetic-nus-3d.py']

image_size = (384, 96)
_crop = dict(type='MultiViewImageResizeCrop', final_size=image_size, resize_lim=(0.94, 1.25),
             bot_pct_lim=(0.18, 0.26), flip_prob=0.5)
train_pipeline = [_crop if t['type'] == 'MultiViewImageResizeCrop' else t for t in _base_.train_pipeline]
test_pipeline = [dict(_crop, flip_prob=0.0, test_mode=True) if t['type'] == 'MultiViewImageResizeCrop' else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
