# The synthetic CMT config + SparseBEV then FuTr (camera tokens and FiLM only), as the
# nuScenes cmt-futr-sparsebev config stacks them.
_base_ = ['./cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py', '../_base_/models/futr_neck.py',
          '../_base_/models/sparsebev_neck.py']

_channels = dict(bev_channels=256, img_channels=_base_.embed_dims, pc_range=_base_.point_cloud_range)
model = dict(fusion_neck=[dict(_base_.sparsebev_neck, **_channels),
                          dict(_base_.futr_neck, **_channels, use_spatial=False)])
