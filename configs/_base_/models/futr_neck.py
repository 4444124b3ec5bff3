# FuTr fusion neck (after FUTR3D): camera tokens (8x8 per view, each with the embedding of
# its pixel's ray and its camera's pose) go through a cross-attention + FFN block over the
# 2x-pooled BEV and give a per-camera FiLM gated by visibility; the spatial path samples
# the views at every BEV cell at three heights (LiDAR frame, metres).
# Children set it as model.fusion_neck (alone or in a list of necks), adding bev_channels,
# img_channels and pc_range. Ablate the paths with
#   --cfg-options model.fusion_neck.use_film=False   (or use_spatial=False)
futr_neck = dict(type='FuTrFusionNeck', embed_dims=128, num_heads=4, cam_pool_size=(8, 8), bev_pool=2,
                 heights=(-1.5, -0.5, 0.5), use_film=True, use_spatial=True, film_combine='gated')
