# FuTr fusion neck (after FuTr3D): camera tokens (8x8 per view +
# camera pose) attend to the 2x-pooled BEV, per-camera FiLM gated by visibility, plus the
# spatial path sampling the views at every BEV cell at three heights (LiDAR frame, metres).
# Children set it as model.fusion_neck, adding bev_channels, img_channels and pc_range.
# Ablate the paths with
#   --cfg-options model.fusion_neck.use_film=False   (or use_spatial=False)
futr_neck = dict(type='FuTrFusionNeck', embed_dims=128, num_heads=4, cam_pool_size=(8, 8), bev_pool=2,
                 heights=(-1.5, -0.5, 0.5), use_film=True, use_spatial=True, film_combine='gated')
