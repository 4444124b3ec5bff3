# The AQR synthetic config trained with modality masking (MoME, Park et al., CVPR 2025,
# trains its router's experts with whole modalities missing; the masking is CMT's, see
# cmt-moddrop): the CMT modality-masking config plus AQR and its local-window bias, so the
# per-query LiDAR / camera weights learn to fall back on the sensor that is left.
_base_ = ['./cmt-moddrop_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py', '../_base_/models/aqr.py']

model = dict(pts_bbox_head=dict(aqr_cfg={{_base_.aqr_cfg}}))
