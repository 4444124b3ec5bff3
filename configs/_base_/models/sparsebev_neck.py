# SparseBEV fusion neck (after SparseBEV, ICCV 2023): the top 10% BEV cells by a
# learned score sample every view at 4 learned offsets x 3 heights (LiDAR frame, metres).
# Children set it as model.fusion_neck (alone or in a list of necks), adding bev_channels,
# img_channels and pc_range. Ablate with
#   --cfg-options model.fusion_neck.keep_ratio=0.2   (global_film=True adds a global camera FiLM)
sparsebev_neck = dict(type='SparseBEVFusionNeck', embed_dims=128, keep_ratio=0.1, num_points=4,
                      heights=(-1.5, -0.5, 0.5))
