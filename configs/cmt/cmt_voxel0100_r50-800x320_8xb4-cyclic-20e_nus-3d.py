# CMT fusion, voxel 0.1 m + ResNet-50 at 800x320 (official: 67.9 mAP / 70.8 NDS on nuScenes val).
_base_ = [
    '../_base_/models/cmt.py',
    '../_base_/datasets/nus-3d-multimodal.py',
    '../_base_/schedules/cmt-cyclic-20e.py',
    '../_base_/default_runtime.py',
]
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]  # 1024 x 1024 voxels, 128 x 128 BEV
class_names = _base_.class_names
image_size = (800, 320)          # (width, height) fed to the image backbone
model = dict(data_preprocessor=dict(voxel_layer=dict(point_cloud_range=point_cloud_range)),
             pts_bbox_head=dict(class_names=class_names, pc_range=point_cloud_range))

# GT-paste as official CMT's UnifiedObjectSample(sample_2d=True, mixup_rate=0.5): LiDAR points
# and image patches. mmdet3d's database has no image crops: the patches are cut from the source
# samples' images (found through the train info file), see ObjectSampleWithImages.
db_sampler = dict(
    type='RecordingDataBaseSampler',
    data_root='data/nuscenes/', info_path='data/nuscenes/nuscenes_dbinfos_train.pkl', rate=1.0,
    prepare=dict(filter_by_difficulty=[-1], filter_by_min_points={name: 5 for name in class_names}),
    classes=class_names,
    sample_groups=dict(car=2, truck=3, construction_vehicle=7, bus=4, trailer=6, barrier=2, motorcycle=6,
                       bicycle=6, pedestrian=2, traffic_cone=2),
    points_loader=dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=[0, 1, 2, 3, 4]))
gt_paste = dict(type='ObjectSampleWithImages', db_sampler=db_sampler, mixup_rate=0.5,
                img_info_path='data/nuscenes/nuscenes_infos_train.pkl', img_prefix={{_base_.data_prefix}})
# official ModalMask3D(mode='train'): blank images in 25% of the samples, no LiDAR in another 25%
# (official: every point moved to the origin; here the point cloud is empty)
modal_mask = dict(type='ModalityDropout', lidar_prob=0.25, camera_prob=0.25)
# official GridMask(use_h, use_w, rotate=1, offset=False, ratio=0.5, mode=1, prob=0.7) blanks pixels of the
# normalised batch to 0 in the detector; here on the raw views, blanked to the normalisation mean
grid_mask = dict(type='MultiViewGridMask', fill=_base_.img_norm['mean'], prob=0.7, use_h=True, use_w=True, rotate=1,
                 ratio=0.5, mode=1)
# official ResizeCropFlipImage: one draw for all six views, bottom crop (bot_pct_lim (0, 0)), 50% flip;
# resize_lim is relative to final width / 1600 (official R50: 0.47-0.625 absolute on 1600x900)
img_aug = dict(type='MultiViewImageResizeCrop', final_size=image_size, resize_lim=(0.94, 1.25), shared=True,
               bot_pct_lim=(0.0, 0.0), flip_prob=0.5)
# official test sizing: scale max(320 / 900, 800 / 1600) = 0.5, 800x450 cropped to its lower 320 rows
img_test = dict(type='MultiViewImageResizeCrop', final_size=image_size, bot_pct_lim=(0.0, 0.0), test_mode=True,
                test_scale='fit')
# official CMT's 10 sweeps + the keyframe (sweeps_num means the same in mmdet3d 0.17 and 1.4;
# no padding of sweep-less samples, close points kept)
_load = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5, backend_args=None),
    dict(type='LoadPointsFromMultiSweeps', sweeps_num=10, use_dim=[0, 1, 2, 3, 4]),
    dict(type='LoadMultiViewImageFromFiles', to_float32=True, num_views=len(_base_.camera_names), backend_args=None),
]
train_pipeline = _load + [
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_attr_label=False),
    gt_paste,
    modal_mask,
    img_aug,
    grid_mask,
    dict(type='GlobalRotScaleTrans', rot_range=[-0.3925 * 2, 0.3925 * 2], scale_ratio_range=[0.9, 1.1],
         translation_std=[0.5, 0.5, 0.5]),
    dict(type='LiDARRandomFlip3D', flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes=class_names),
    dict(type='ComputeLidar2Img'),
    dict(type='PointShuffle'),
    dict(type='Pack3DDetInputs', keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d']),
]
test_pipeline = _load + [
    img_test,
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ComputeLidar2Img'),
    dict(type='Pack3DDetInputs', keys=['points', 'img']),
]
# official: 15 epochs with GT-paste, the last 5 without (also when a run resumes past epoch 15)
custom_hooks = [dict(type='ResumableDisableObjectSampleHook', disable_after_epoch=15)]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(_delete_=True, type='CBGSDataset',
                 dataset=dict(type={{_base_.dataset_type}}, data_root='data/nuscenes/',
                              ann_file='nuscenes_infos_train.pkl', pipeline=train_pipeline,
                              metainfo=dict(classes=class_names),
                              modality=dict(use_lidar=True, use_camera=True),
                              data_prefix={{_base_.data_prefix}}, test_mode=False,
                              box_type_3d='LiDAR')))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# official R50 recipe: 8 GPUs x 4 samples, lr 1.4e-4, peak x6 (the schedule's VoV recipe: x8)
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic', optimizer=dict(lr=1.4e-4))
param_scheduler = [dict(s, eta_min_ratio=6) if s['type'] == 'CosineAnnealingLR' and s['begin'] == 0 else s
                   for s in _base_.param_scheduler]
