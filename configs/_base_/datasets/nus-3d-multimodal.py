# nuScenes, camera + LiDAR: points (+ 9 sweeps), 6 images and their calibration.
# Real data: data/nuscenes with info files from
#   python tools/create_data.py nuscenes --root-path data/nuscenes --out-dir data/nuscenes \
#       --extra-tag nuscenes --version v1.0
# Model configs add their augmentation and image resizing to these pipelines.
custom_imports = dict(imports=['plugin'], allow_failed_imports=False)

point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
class_names = [
    'car', 'truck', 'trailer', 'bus', 'construction_vehicle', 'bicycle',
    'motorcycle', 'pedestrian', 'traffic_cone', 'barrier'
]
camera_names = ['CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT',
                'CAM_BACK', 'CAM_BACK_LEFT', 'CAM_BACK_RIGHT']
metainfo = dict(classes=class_names)  # version defaults to v1.0-trainval
dataset_type = 'CheckedNuScenesDataset'  # mmdet3d's NuScenesDataset + input checks (plugin)
data_root = 'data/nuscenes/'
input_modality = dict(use_lidar=True, use_camera=True)
data_prefix = dict(pts='samples/LIDAR_TOP', sweeps='sweeps/LIDAR_TOP',
                   **{cam: f'samples/{cam}' for cam in camera_names})
backend_args = None

_load = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5,
         backend_args=backend_args),
    dict(type='LoadPointsFromMultiSweeps', sweeps_num=9, use_dim=[0, 1, 2, 3, 4],
         pad_empty_sweeps=True, remove_close=True, backend_args=backend_args),
    dict(type='LoadMultiViewImageFromFiles', to_float32=True, num_views=len(camera_names),
         backend_args=backend_args),
]
train_pipeline = _load + [
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_attr_label=False),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes=class_names),
    dict(type='ComputeLidar2Img'),
    dict(type='Pack3DDetInputs', keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d']),
]
test_pipeline = _load + [
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ComputeLidar2Img'),
    dict(type='Pack3DDetInputs', keys=['points', 'img']),
]

_dataset = dict(
    type=dataset_type, data_root=data_root, metainfo=metainfo, modality=input_modality,
    data_prefix=data_prefix, box_type_3d='LiDAR', backend_args=backend_args)
train_dataloader = dict(
    batch_size=2, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(ann_file='nuscenes_infos_train.pkl', pipeline=train_pipeline,
                 test_mode=False, **_dataset))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(ann_file='nuscenes_infos_val.pkl', pipeline=test_pipeline,
                 test_mode=True, **_dataset))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='NuScenesMetric', data_root=data_root, ann_file=data_root + 'nuscenes_infos_val.pkl',
    metric='bbox', backend_args=backend_args)
test_evaluator = val_evaluator
