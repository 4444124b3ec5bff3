# The AQR synthetic config on the 30-epoch schedule of the baseline's longer run.
_base_ = ['./cmt_pillar080_r18-256x144_1xb2-30e_synthetic-nus-3d.py', '../_base_/models/aqr.py']

model = dict(pts_bbox_head=dict(aqr_cfg={{_base_.aqr_cfg}}))
