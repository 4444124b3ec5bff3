# The synthetic CMT config + the FuTr fusion neck: 64x64 BEV of 256 channels,
# 16x9 image maps of 128 channels.
_base_ = ['./cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py', '../_base_/models/futr_neck.py']

model = dict(fusion_neck=dict(**_base_.futr_neck, bev_channels=256, img_channels=_base_.embed_dims,
                              pc_range=_base_.point_cloud_range))
