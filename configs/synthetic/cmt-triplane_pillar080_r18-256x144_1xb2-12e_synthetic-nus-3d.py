# The synthetic CMT config + the triplane generator, sized for a 2-core CPU:
# 3 x 16 x 16 tokens of 128 (4 heads of 32), upsampled to 3 planes of 32 x 32 x 32 (the
# 64 x 64 BEV gets the XY plane resized); 8x8 BEV + 2x4 per-camera context tokens.
# Mixed precision everywhere: DeviceAmpOptimWrapper is mmengine's AmpOptimWrapper (fp16 +
# dynamic loss scaling) on a GPU, and bfloat16 autocast on a CPU.
_base_ = ['./cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py', '../_base_/models/triplane.py']

_generator = dict(_base_.triplane_neck['generator'], context_dim=128, internal_resolution=16,
                  triplane_resolution=32, d_model=128, head_dim=32, output_channels=32, ffn_channels=256,
                  upsampler=dict(type='TriplaneUpsampler', mid_channels=64), with_cp=False)
model = dict(triplane=dict(_base_.triplane_neck, generator=_generator, bev_tokens=(8, 8), cam_tokens=(2, 4),
                           bev_channels=256, img_channels=_base_.embed_dims, pc_range=_base_.point_cloud_range),
             pts_bbox_head=dict(triplane_cfg=dict(_base_.triplane_query, in_channels=32)))
optim_wrapper = dict(type='DeviceAmpOptimWrapper')
