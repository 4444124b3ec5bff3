# CMT (VoV-99, 1600x640, voxel 0.075) + the triplane generator; otherwise the
# baseline's recipe, including its fp16 AmpOptimWrapper (dynamic loss scaling).
_base_ = ['../cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py', '../_base_/models/triplane.py']

model = dict(triplane=dict(**_base_.triplane_neck, bev_channels=512, img_channels=256,
                           pc_range=_base_.point_cloud_range),
             pts_bbox_head=dict(triplane_cfg=_base_.triplane_query))
