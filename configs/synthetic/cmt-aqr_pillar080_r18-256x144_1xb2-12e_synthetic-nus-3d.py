# The synthetic CMT config + AQR and the local-window attention bias. Window 15
# is 15 BEV cells (24 m at 1.6 m cells) and 15 feature pixels on the 16x9 stride-16 maps.
_base_ = ['./cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py', '../_base_/models/aqr.py']

model = dict(pts_bbox_head=dict(aqr_cfg={{_base_.aqr_cfg}}))
