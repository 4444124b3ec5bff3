# The synthetic CMT config + the SparseBEV fusion neck: the top 10% of the 64x64
# BEV cells sample the 16x9 image maps.
_base_ = ['./cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py', '../_base_/models/sparsebev_neck.py']

model = dict(fusion_neck=dict(**_base_.sparsebev_neck, bev_channels=256, img_channels=_base_.embed_dims,
                              pc_range=_base_.point_cloud_range))
