# CMT (VoV-99, 1600x640, voxel 0.075) + the SparseBEV fusion neck between the backbones and
# the head; otherwise the baseline's recipe.
_base_ = ['../cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py', '../_base_/models/sparsebev_neck.py']

model = dict(fusion_neck=dict(**_base_.sparsebev_neck, bev_channels=512, img_channels=256, pc_range=_base_.point_cloud_range))
