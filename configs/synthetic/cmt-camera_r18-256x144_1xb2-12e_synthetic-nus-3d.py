# Camera-only CMT on the generated data: the synthetic CMT config without its LiDAR. No
# points are loaded and no LiDAR branch is built, so the head decodes against the camera
# maps alone, from CMT's learned reference points with zero content (the BEV heatmap
# queries and the BEV query content need a LiDAR map). The global rotation / scaling
# augmentation is left out with the points (mmdet3d's GlobalRotScaleTrans moves points
# with the boxes); the BEV flips stay (they move the boxes and lidar2img).
_base_ = ['./cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py']

model = dict(
    data_preprocessor=dict(voxel=False),
    pts_voxel_encoder=None, pts_middle_encoder=None, pts_backbone=None, pts_neck=None,
    pts_bbox_head=dict(in_channels_bev=None, query_content='zeros', aux_heatmap_cfg=None, query_generator=None,
                       learned_queries=None))

_lidar_steps = ('LoadPointsFromFile', 'LoadPointsFromMultiSweeps', 'PointsRangeFilter', 'PointShuffle',
                'GlobalRotScaleTrans')


def _camera_only(pipeline):
    return [dict(t, keys=[k for k in t['keys'] if k != 'points']) if t['type'] == 'Pack3DDetInputs' else t
            for t in pipeline if t['type'] not in _lidar_steps]


train_pipeline = _camera_only(_base_.train_pipeline)
test_pipeline = _camera_only(_base_.test_pipeline)
_modality = dict(use_lidar=False, use_camera=True)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, modality=_modality))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, modality=_modality))
test_dataloader = val_dataloader
