"""A small CmtHead (two decoder layers, 32 channels) for unit tests."""
import plugin  # noqa: F401


def small_cmt_head(query_content, **kwargs):
    from mmdet3d.registry import MODELS
    attn = dict(type='BiasedMultiheadAttention', embed_dims=32, num_heads=2)
    layer = dict(type='PETRTransformerDecoderLayer', self_attn_cfg=attn, cross_attn_cfg=attn,
                 ffn_cfg=dict(embed_dims=32, feedforward_channels=64))
    classes = ['car', 'pedestrian']
    cfg = dict(
        type='CmtHead', class_names=classes, tasks=[classes], pc_range=[-10, -10, -3, 10, 10, 1],
        in_channels_bev=16, in_channels_img=None, embed_dims=32, num_query=20, depth_num=4,
        transformer=dict(type='CmtTransformer', decoder=dict(type='PETRTransformerDecoder', num_layers=2,
                                                             layer_cfg=layer)),
        dn_cfg=None, query_content=query_content)
    head = MODELS.build(dict(cfg, **kwargs))
    head.init_weights()
    return head
