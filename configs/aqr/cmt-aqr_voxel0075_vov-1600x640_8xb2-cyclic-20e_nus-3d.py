# CMT (VoV-99, 1600x640, voxel 0.075) + AQR weights and the local-window attention bias
# (window 15 = 9 m on the 0.6 m BEV cell of the 180x180 grid), same recipe as the baseline.
_base_ = ['../cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py', '../_base_/models/aqr.py']

model = dict(pts_bbox_head=dict(aqr_cfg={{_base_.aqr_cfg}}))
