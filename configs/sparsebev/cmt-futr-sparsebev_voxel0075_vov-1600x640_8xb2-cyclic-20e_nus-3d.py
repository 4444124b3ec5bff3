# CMT (VoV-99, 1600x640, voxel 0.075) + two fusion necks in turn: SparseBEV (the top BEV
# cells sample the views), then FuTr's camera tokens and per-camera FiLM, its spatial path
# off (SparseBEV samples the views already); otherwise the baseline's recipe.
_base_ = ['../cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py', '../_base_/models/futr_neck.py',
          '../_base_/models/sparsebev_neck.py']

_channels = dict(bev_channels=512, img_channels=256, pc_range=_base_.point_cloud_range)
model = dict(fusion_neck=[dict(_base_.sparsebev_neck, **_channels),
                          dict(_base_.futr_neck, **_channels, use_spatial=False)])
