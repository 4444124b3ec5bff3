# AQR (MoME's Adaptive Query Router, CVPR 2025, made continuous): per-query LiDAR / camera
# weights from a LAM-restricted attention (BEV window 5, camera window 15, 4 heads, after
# MoME), applied as a local-window bias (window 15, scale 1) in every decoder
# cross-attention. Children splice these into `model.pts_bbox_head`; ablate with
#   --cfg-options model.pts_bbox_head.attn_bias_cfg.window_size=5
# or in metres (the same window on any BEV grid): attn_bias_cfg.window_size_m=3.0
aqr_cfg = dict(type='AQRWeightGenerator', window_sizes=(5, 15), num_heads=4)
attn_bias_cfg = dict(type='AttentionBiasGenerator', window_size=15, bias_scale=1.0, learnable_scale=False)
