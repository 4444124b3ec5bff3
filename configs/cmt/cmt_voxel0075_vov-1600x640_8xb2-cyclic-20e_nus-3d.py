# CMT fusion, voxel 0.075 m + VoVNet-99 at 1600x640 (official: 70.3 mAP / 72.9 NDS on nuScenes
# val): the R50 config with the finer voxels (180 x 180 BEV), the larger images and VoVNet.
_base_ = ['./cmt_voxel0100_r50-800x320_8xb4-cyclic-20e_nus-3d.py']

point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
voxel_size = [0.075, 0.075, 0.2]
image_size = (1600, 640)
class_names = {{_base_.class_names}}

model = dict(
    data_preprocessor=dict(voxel_layer=dict(voxel_size=voxel_size, point_cloud_range=point_cloud_range)),
    img_backbone=dict(_delete_=True, type='VoVNet', spec_name='V-99-eSE', norm_eval=True, frozen_stages=-1,
                      out_features=('stage4', 'stage5'),
                      # official CMT's DD3D-pretrained V-99 goes to ckpts/fcos3d_vovnet_imgbackbone-remapped.pth
                      init_cfg=dict(type='StrictPretrained', prefix='img_backbone.',
                                    checkpoint='ckpts/fcos3d_vovnet_imgbackbone-remapped.pth')),
    img_neck=dict(in_channels=[768, 1024]),
    pts_middle_encoder=dict(sparse_shape=[41, 1440, 1440]),
    pts_bbox_head=dict(pc_range=point_cloud_range))

# the R50 config's pipelines (GT-paste with image patches, modality masking, GridMask) with this
# image size and range; official test sizing: scale max(640 / 900, 1600 / 1600) = 1, the lower
# 640 rows of the 1600x900 views
img_aug = dict(type='MultiViewImageResizeCrop', final_size=image_size, resize_lim=(0.94, 1.25), shared=True,
               bot_pct_lim=(0.0, 0.0), flip_prob=0.5)
img_test = dict(type='MultiViewImageResizeCrop', final_size=image_size, bot_pct_lim=(0.0, 0.0), test_mode=True,
                test_scale='fit')
train_pipeline = [img_aug if t['type'] == 'MultiViewImageResizeCrop' else
                  dict(t, point_cloud_range=point_cloud_range) if 'point_cloud_range' in t else t
                  for t in _base_.train_pipeline]
test_pipeline = [img_test if t['type'] == 'MultiViewImageResizeCrop' else
                 dict(t, point_cloud_range=point_cloud_range) if 'point_cloud_range' in t else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(batch_size=2, dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# official VoV-99 recipe: 8 GPUs x 2 samples, lr 1e-4, peak x8
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [dict(s, eta_min_ratio=8) if s['type'] == 'CosineAnnealingLR' and s['begin'] == 0 else s
                   for s in _base_.param_scheduler]
