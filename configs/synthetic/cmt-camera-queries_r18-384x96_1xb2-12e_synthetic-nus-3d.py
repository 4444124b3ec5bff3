# The dense, horizon-framed camera-only CMT with image-seeded queries: 150 of its 200
# queries start at the peaks of the camera-centre heatmaps (`CameraPeakQueries`), lifted
# along their pixel rays to the predicted depth, with the image feature at the peak as
# content; 50 stay CMT's learned reference points. For the first half of the schedule the
# peaks on ground-truth centres take the true depth (`UseGtDepthHook`, as Far3D).
_base_ = ['./cmt-camera-dense_r18-384x96_1xb2-12e_synthetic-nus-3d.py']

model = dict(pts_bbox_head=dict(
    learned_queries=50,
    query_generator=dict(_delete_=True, type='CameraPeakQueries', in_channels=_base_.embed_dims)))
custom_hooks = [*_base_.custom_hooks, dict(type='UseGtDepthHook', stop_epoch=_base_.train_cfg.max_epochs // 2)]
