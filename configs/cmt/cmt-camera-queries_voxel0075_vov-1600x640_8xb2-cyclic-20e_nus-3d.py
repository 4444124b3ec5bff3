# The VoV CMT recipe with image-seeded queries: dense supervision of its camera maps
# (`ImageCentreHead`, after StreamPETR's 2D focal head and Far3D's 2D branch: per-class
# heatmaps of the projected 3D box centres, their sub-cell offsets and log depths), and
# 300 of the 900 queries at that head's peaks, lifted along their pixel rays to the
# predicted depth with the image feature as content (`CameraPeakQueries`, after Far3D);
# ground-truth depths for those on true centres in the first quarter of the schedule
# (`UseGtDepthHook`; the switch epoch is not tuned on nuScenes). The other 600 stay CMT's
# learned reference points. The depth branch is camera-aware: it predicts depth at
# nuScenes' full-resolution focal length (~1266 px) and each view scales it by its own, so
# the recipe's resize augmentation does not contradict the depth targets.
_base_ = ['./cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py']

model = dict(
    img_centre_head=dict(type='ImageCentreHead', in_channels=_base_.embed_dims, num_classes=len(_base_.class_names),
                         depth_focal=1266.0),
    pts_bbox_head=dict(learned_queries=_base_.num_query - 300,
                       query_generator=dict(type='CameraPeakQueries', in_channels=_base_.embed_dims)))
custom_hooks = [*_base_.custom_hooks,
                dict(type='UseGtDepthHook', stop_epoch=_base_.train_cfg.max_epochs // 4)]
