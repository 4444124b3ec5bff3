# The generated nuScenes-format data set as the CPU configs read it: its dataset config
# (synthetic-nus-3d-multimodal.py: root, v1.0-mini split, evaluator) with pipelines for a
# 2-core CPU, written out in full. Against the CMT recipe's: the generated set's 9 sweeps,
# JPEGs decoded at 1/4 for 256x144 crops (the reduction is recorded in img_aug_matrix), an
# independent resize per view without flips, and no GT-paste, modality masking or GridMask
# (a 480-iteration schedule learns without them).
_base_ = ['./synthetic-nus-3d-multimodal.py']

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
image_size = (256, 144)          # (width, height) fed to the image backbone

_load = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5, backend_args=None),
    dict(type='LoadPointsFromMultiSweeps', sweeps_num=9, use_dim=[0, 1, 2, 3, 4], pad_empty_sweeps=True,
         remove_close=True),
    dict(type='LoadMultiViewImageFromFilesReduced', reduce=4, to_float32=True, num_views=len(_base_.camera_names)),
]
train_pipeline = _load + [
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_attr_label=False),
    dict(type='MultiViewImageResizeCrop', final_size=image_size, resize_lim=(0.94, 1.25), flip_prob=0.0),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.3925 * 2, 0.3925 * 2], scale_ratio_range=[0.9, 1.1],
         translation_std=[0.5, 0.5, 0.5]),
    dict(type='LiDARRandomFlip3D', flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes=_base_.class_names),
    dict(type='ComputeLidar2Img'),
    dict(type='PointShuffle'),
    dict(type='Pack3DDetInputs', keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d']),
]
test_pipeline = _load + [
    dict(type='MultiViewImageResizeCrop', final_size=image_size, resize_lim=(0.94, 1.25), test_mode=True),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ComputeLidar2Img'),
    dict(type='Pack3DDetInputs', keys=['points', 'img']),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
