# Triplane generator (after MoReMouse / EG3D): the scene
# context (16x16 pooled BEV tokens + 4x8 tokens per camera) drives 3 x 64 x 64 = 12,288
# learnable tokens (d_model 512, 8 heads of 64, SDPA self-attention + cross-attention to
# the context), upsampled to 3 planes of 80 x 128 x 128. The XY plane is added to the BEV
# map; the head samples all three planes at each query's reference point.
# Children set model.triplane = dict(**triplane_neck, bev_channels=..., img_channels=...,
# pc_range=...) and model.pts_bbox_head.triplane_cfg = triplane_query. Ablations:
#   --cfg-options model.triplane.fuse_bev=False          (queries only)
#   --cfg-options model.pts_bbox_head.triplane_cfg=None  (BEV fusion only)
triplane_neck = dict(
    type='TriplaneNeck', bev_tokens=(16, 16), cam_tokens=(4, 8), fuse_bev=True,
    generator=dict(type='TriplaneGenerator', context_dim=256, num_layers=2, internal_resolution=64,
                   triplane_resolution=128, d_model=512, head_dim=64, output_channels=80, ffn_channels=1024,
                   upsampler=dict(type='TriplaneUpsampler', mid_channels=128), with_cp=True))
triplane_query = dict(in_channels=80, reduce='sum')
