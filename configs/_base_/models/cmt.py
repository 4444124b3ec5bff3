# The CMT detector (Yan et al., "Cross Modal Transformer", ICCV 2023) as its official R50
# fusion recipe builds it: 0.1 m voxels (1024 x 1024 grid, 128 x 128 BEV), ResNet-50 +
# CPFPN, SECOND + SECONDFPN, 900 queries, 6 decoder layers. A composed config ties it to its
# data: `model.data_preprocessor.voxel_layer.point_cloud_range`, `model.pts_bbox_head.pc_range`
# and `model.pts_bbox_head.class_names` come from the dataset's range and classes.
voxel_size = [0.1, 0.1, 0.2]
embed_dims = 256
num_query = 900
num_decoder_layers = 6
img_norm = dict(mean=[103.530, 116.280, 123.675], std=[57.375, 57.120, 58.395], bgr_to_rgb=False)

# official: self-attention (mmcv MultiheadAttention, dropout=0.1) drops attention weights and
# output; cross-attention (flash-attn FlashMHA) drops only its output
_self_attn = dict(type='BiasedMultiheadAttention', embed_dims=embed_dims, num_heads=8, attn_drop=0.1,
                  proj_drop=0.1)
_cross_attn = dict(_self_attn, attn_drop=0.0)
model = dict(
    type='CmtDetector',
    # official CMT keeps the voxel encoder, the sparse encoder and the head in fp32 under AMP
    fp32_modules=['pts_voxel_encoder', 'pts_middle_encoder', 'pts_bbox_head'],
    data_preprocessor=dict(
        type='Det3DDataPreprocessor', voxel=True, voxel_type='hard',
        voxel_layer=dict(max_num_points=10, voxel_size=voxel_size, max_voxels=(120000, 160000)),
        pad_size_divisor=32, **img_norm),
    img_backbone=dict(
        type='mmdet.ResNet', depth=50, num_stages=4, out_indices=(2, 3), frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, with_cp=True, style='pytorch',
        # official CMT's nuImages-pretrained ResNet-50 (a detector checkpoint) goes to ckpts/nuim_r50.pth
        init_cfg=dict(type='StrictPretrained', checkpoint='ckpts/nuim_r50.pth', prefix='img_backbone.')),
    img_neck=dict(type='CPFPN', in_channels=[1024, 2048], out_channels=embed_dims, num_outs=2),
    pts_voxel_encoder=dict(type='HardSimpleVFE', num_features=5),
    pts_middle_encoder=dict(
        type='SparseEncoder', in_channels=5, sparse_shape=[41, 1024, 1024], output_channels=128,
        order=('conv', 'norm', 'act'),
        encoder_channels=((16, 16, 32), (32, 32, 64), (64, 64, 128), (128, 128)),
        encoder_paddings=((0, 0, 1), (0, 0, 1), (0, 0, [0, 1, 1]), (0, 0)), block_type='basicblock'),
    pts_backbone=dict(
        type='SECOND', in_channels=256, out_channels=[128, 256], layer_nums=[5, 5], layer_strides=[1, 2],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01), conv_cfg=dict(type='Conv2d', bias=False)),
    pts_neck=dict(
        type='SECONDFPN', in_channels=[128, 256], out_channels=[256, 256], upsample_strides=[1, 2],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01), upsample_cfg=dict(type='deconv', bias=False),
        use_conv_for_no_stride=True),
    pts_bbox_head=dict(
        # the official CMT head: one 10-class task, layer-wise task heads, 3x3 conv + BN + ReLU
        # on the BEV map, CMT's embeddings, depth bins, box code order and losses (CmtHead defaults)
        type='CmtHead',
        in_channels_bev=512, in_channels_img=embed_dims, embed_dims=embed_dims, num_query=num_query,
        depth_num=64,
        transformer=dict(
            type='CmtTransformer',
            decoder=dict(
                type='PETRTransformerDecoder', num_layers=num_decoder_layers,
                layer_cfg=dict(type='PETRTransformerDecoderLayer', self_attn_cfg=_self_attn, cross_attn_cfg=_cross_attn,
                               ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=1024, ffn_drop=0.0),
                               with_cp=False))),
        bbox_coder=dict(type='NMSFreeCoder', max_num=300, num_classes=10,
                        post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0]),
        assigner=dict(type='HungarianAssigner3D',
                      cls_cost=dict(type='mmdet.FocalLossCost', weight=2.0),
                      reg_cost=dict(type='BBox3DL1Cost', weight=0.25)),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
        loss_bbox=dict(type='mmdet.L1Loss', loss_weight=0.25),
        code_weights=[2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2],   # loss and matching cost
        dn_cfg=dict(num_groups=10, box_noise_scale=1.0, split=0.75, cap_groups=True)))
