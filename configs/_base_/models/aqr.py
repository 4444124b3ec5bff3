# AQR (MoME's Adaptive Query Router, CVPR 2025, made continuous), one key of CmtHead:
# the router gives per-query LiDAR / camera weights from a LAM-restricted attention (BEV
# window 5, camera window 15, 4 heads, after MoME); the bias applies them as a local-window
# bias (window 15, scale 1) in every decoder cross-attention. Children set
# `model.pts_bbox_head.aqr_cfg` to it; ablate with
#   --cfg-options model.pts_bbox_head.aqr_cfg.bias.window_size=5
# or in metres (the same window on any BEV grid): aqr_cfg.bias.window_size_m=3.0
aqr_cfg = dict(
    router=dict(type='AQRWeightGenerator', window_sizes=(5, 15), num_heads=4),
    bias=dict(type='AttentionBiasGenerator', window_size=15, bias_scale=1.0, learnable_scale=False))
