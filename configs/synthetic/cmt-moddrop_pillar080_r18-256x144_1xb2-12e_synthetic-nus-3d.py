# The demo config trained with the modality masking of the official CMT recipe that the
# demo leaves out (CMT's ModalMask3D, as the nuScenes configs' `modal_mask`: no LiDAR in 25 %
# of the training samples, all cameras blank in another 25 %, never both), so that one sensor alone
# still detects; cmt-aqr-moddrop adds AQR to this config, and tools/robustness_eval.py measures
# what they buy under sensor failures.
#
# A sample without points still needs queries where the objects are, and a camera path that
# localises on its own: the camera-only recipe's parts come with the masking. The dense image
# head (`ImageCentreHead`: camera-centre heatmaps, offsets and camera-aware log depths, the
# depth loss weighed 3x) places 150 queries at its peaks (`CameraPeakQueries`, true depths in
# the first half of the schedule as Far3D's `UseGtDepthHook`) next to the 150 at the BEV
# heatmap's peaks, and each query's detections are scored with its heatmap (TransFusion's
# rescoring): a sample without LiDAR has a flat BEV heatmap, so its BEV queries score low
# and the camera queries carry the detections. The demo's 50 learned reference points go:
# they are not rescored, so their raw scores outrank every rescored query (with them, the
# top 30 detections of a sample without LiDAR were all learned queries, 2 % of them within
# 2 m of an object, docs/results/robustness.md).
_base_ = ['./cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py']

_pack = [step['type'] for step in _base_.train_pipeline].index('Pack3DDetInputs')
train_pipeline = (_base_.train_pipeline[:_pack] + [dict(type='ModalityDropout', lidar_prob=0.25, camera_prob=0.25)]
                  + _base_.train_pipeline[_pack:])
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# the generator's 1266 px focal length at 1600 px wide, resized to 256 wide at the test
# crop's mean scale 1.095: depths are predicted at this focal length and scaled per view
_depth_focal = 222.0
model = dict(
    img_centre_head=dict(type='ImageCentreHead', in_channels=_base_.embed_dims, num_classes=len(_base_.class_names),
                         depth_focal=_depth_focal, loss_depth=dict(type='mmdet.L1Loss', loss_weight=3.0)),
    pts_bbox_head=dict(
        num_query=300, learned_queries=0, query_score_prior=True,
        query_generator=dict(_delete_=True, type='CompositeQueries', generators=[
            dict(type='BEVHeatmapQueries', num_query=150),
            dict(type='CameraPeakQueries', num_query=150, in_channels=_base_.embed_dims)])))
custom_hooks = [*_base_.custom_hooks, dict(type='UseGtDepthHook', stop_epoch=_base_.train_cfg.max_epochs // 2)]
