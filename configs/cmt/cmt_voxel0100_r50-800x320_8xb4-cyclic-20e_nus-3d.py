# CMT fusion, voxel 0.1 m + ResNet-50 at 800x320 (official: 67.9 mAP / 70.8 NDS on nuScenes val).
_base_ = [
    '../_base_/datasets/nus-3d-multimodal.py',
    '../_base_/schedules/cmt-cyclic-20e.py',
    '../_base_/default_runtime.py',
]
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]  # 1024 x 1024 voxels, 128 x 128 BEV
voxel_size = [0.1, 0.1, 0.2]
class_names = _base_.class_names
image_size = (800, 320)          # (width, height) fed to the image backbone
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
        voxel_layer=dict(max_num_points=10, voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                         max_voxels=(120000, 160000)),
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
        type='CmtHead', class_names=class_names, pc_range=point_cloud_range,
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

# GT-paste as official CMT's UnifiedObjectSample(sample_2d=True, mixup_rate=0.5): LiDAR points
# and image patches. mmdet3d's database has no image crops: the patches are cut from the source
# samples' images (found through the train info file), see ObjectSampleWithImages.
db_sampler = dict(
    type='RecordingDataBaseSampler',
    data_root='data/nuscenes/', info_path='data/nuscenes/nuscenes_dbinfos_train.pkl', rate=1.0,
    prepare=dict(filter_by_difficulty=[-1], filter_by_min_points={name: 5 for name in class_names}),
    classes=class_names,
    sample_groups=dict(car=2, truck=3, construction_vehicle=7, bus=4, trailer=6, barrier=2, motorcycle=6,
                       bicycle=6, pedestrian=2, traffic_cone=2),
    points_loader=dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=[0, 1, 2, 3, 4]))
gt_paste = dict(type='ObjectSampleWithImages', db_sampler=db_sampler, mixup_rate=0.5,
                img_info_path='data/nuscenes/nuscenes_infos_train.pkl', img_prefix={{_base_.data_prefix}})
# official ModalMask3D(mode='train'): blank images in 25% of the samples, no LiDAR in another 25%
# (official: every point moved to the origin; here the point cloud is empty)
modal_mask = dict(type='ModalityDropout', lidar_prob=0.25, camera_prob=0.25)
# official GridMask(use_h, use_w, rotate=1, offset=False, ratio=0.5, mode=1, prob=0.7) blanks pixels of the
# normalised batch to 0 in the detector; here on the raw views, blanked to the normalisation mean
grid_mask = dict(type='MultiViewGridMask', fill=img_norm['mean'], prob=0.7, use_h=True, use_w=True, rotate=1,
                 ratio=0.5, mode=1)
# official ResizeCropFlipImage: one draw for all six views, bottom crop (bot_pct_lim (0, 0)), 50% flip;
# resize_lim is relative to final width / 1600 (official R50: 0.47-0.625 absolute on 1600x900)
img_aug = dict(type='MultiViewImageResizeCrop', final_size=image_size, resize_lim=(0.94, 1.25), shared=True,
               bot_pct_lim=(0.0, 0.0), flip_prob=0.5)
# official test sizing: scale max(320 / 900, 800 / 1600) = 0.5, 800x450 cropped to its lower 320 rows
img_test = dict(type='MultiViewImageResizeCrop', final_size=image_size, bot_pct_lim=(0.0, 0.0), test_mode=True,
                test_scale='fit')
# the dataset config's pipelines with official CMT's augmentation, its 10 sweeps + the
# keyframe (sweeps_num means the same in mmdet3d 0.17 and 1.4; no padding of sweep-less
# samples, close points kept), this range and the image resizing
_sweeps = dict(type='LoadPointsFromMultiSweeps', sweeps_num=10, use_dim=[0, 1, 2, 3, 4])
_train_after = dict(  # steps inserted after the step of that type
    LoadAnnotations3D=[
        gt_paste, modal_mask, img_aug, grid_mask,
        dict(type='GlobalRotScaleTrans', rot_range=[-0.3925 * 2, 0.3925 * 2], scale_ratio_range=[0.9, 1.1],
             translation_std=[0.5, 0.5, 0.5]),
        dict(type='LiDARRandomFlip3D', flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5)],
    ComputeLidar2Img=[dict(type='PointShuffle')])
_test_after = dict(LoadMultiViewImageFromFiles=[img_test])
train_pipeline = [step for t in _base_.train_pipeline
                  for step in [_sweeps if t['type'] == _sweeps['type'] else
                               dict(t, point_cloud_range=point_cloud_range) if 'point_cloud_range' in t else t]
                  + _train_after.get(t['type'], [])]
test_pipeline = [step for t in _base_.test_pipeline
                 for step in [_sweeps if t['type'] == _sweeps['type'] else
                              dict(t, point_cloud_range=point_cloud_range) if 'point_cloud_range' in t else t]
                 + _test_after.get(t['type'], [])]
# official: 15 epochs with GT-paste, the last 5 without (also when a run resumes past epoch 15)
custom_hooks = [dict(type='ResumableDisableObjectSampleHook', disable_after_epoch=15)]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(_delete_=True, type='CBGSDataset',
                 dataset=dict(type={{_base_.dataset_type}}, data_root='data/nuscenes/',
                              ann_file='nuscenes_infos_train.pkl', pipeline=train_pipeline,
                              metainfo=dict(classes=class_names),
                              modality=dict(use_lidar=True, use_camera=True),
                              data_prefix={{_base_.data_prefix}}, test_mode=False,
                              box_type_3d='LiDAR')))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# official R50 recipe: 8 GPUs x 4 samples, lr 1.4e-4, peak x6 (the schedule's VoV recipe: x8)
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic', optimizer=dict(lr=1.4e-4))
param_scheduler = [dict(s, eta_min_ratio=6) if s['type'] == 'CosineAnnealingLR' and s['begin'] == 0 else s
                   for s in _base_.param_scheduler]

