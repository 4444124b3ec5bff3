"""Key names and shapes of the checkpoints the official CMT loads: its VoVNet (the
`nn.Sequential(OrderedDict)` names of the official `vovnet.py`) and a pytorch-style
ResNet-50 (torchvision / mmdet names), derived from those definitions, not from this
plugin's modules."""
import os.path as osp

import torch

from tests.helpers.repo import REPO

VOV_CONFIG = 'configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'
PREFIX = 'img_backbone.'


# official VoVNet specs: stem channels, conv channels, output channels, layers per block, blocks
V19 = ([64, 64, 128], [128, 160, 192, 224], [256, 512, 768, 1024], 3, [1, 1, 1, 1])
V99 = ([64, 64, 128], [128, 160, 192, 224], [256, 512, 768, 1024], 5, [1, 3, 9, 3])


def _bn(shapes, name, channels):
    for param in ('weight', 'bias', 'running_mean', 'running_var'):
        shapes[f'{name}.{param}'] = (channels,)
    shapes[f'{name}.num_batches_tracked'] = ()


def official_vovnet_shapes(spec):
    """Key -> shape of the official VoVNet: `stem_i/conv|norm` in `stem`, blocks `OSAs_b`
    (layers `OSAs_b_l`, `OSAs_b_concat`, `ese.fc`) in `stage2`..`stage5`."""
    stem_ch, conv_ch, out_ch, layers, blocks = spec
    shapes = {}

    def conv_norm(name, cout, cin, kernel):
        shapes[f'{name}/conv.weight'] = (cout, cin, kernel, kernel)
        _bn(shapes, f'{name}/norm', cout)

    cin = 3
    for i, c in enumerate(stem_ch):
        conv_norm(f'stem.stem_{i + 1}', c, cin, 3)
        cin = c
    for s in range(2, 6):
        c, out = conv_ch[s - 2], out_ch[s - 2]
        for b in range(1, blocks[s - 2] + 1):
            osa = f'OSA{s}_{b}'
            block = f'stage{s}.{osa}'
            for layer in range(layers):
                conv_norm(f'{block}.layers.{layer}.{osa}_{layer}', c, cin if layer == 0 else c, 3)
            conv_norm(f'{block}.concat.{osa}_concat', out, cin + layers * c, 1)
            shapes[f'{block}.ese.fc.weight'] = (out, out, 1, 1)
            shapes[f'{block}.ese.fc.bias'] = (out,)
            cin = out
    return shapes


def resnet50_shapes():
    """Key -> shape of a pytorch-style ResNet-50 (torchvision and mmdet names, no fc)."""
    shapes = {'conv1.weight': (64, 3, 7, 7)}
    _bn(shapes, 'bn1', 64)
    cin = 64
    for i, (planes, num_blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), 1):
        for j in range(num_blocks):
            block = f'layer{i}.{j}'
            for k, (cout, cin_k, kernel) in enumerate(
                    [(planes, cin, 1), (planes, planes, 3), (planes * 4, planes, 1)], 1):
                shapes[f'{block}.conv{k}.weight'] = (cout, cin_k, kernel, kernel)
                _bn(shapes, f'{block}.bn{k}', cout)
            if j == 0:
                shapes[f'{block}.downsample.0.weight'] = (planes * 4, cin, 1, 1)
                _bn(shapes, f'{block}.downsample.1', planes * 4)
            cin = planes * 4
    return shapes


def random_state_dict(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randint(1, 1000, (), generator=gen) if shape == () else torch.randn(shape, generator=gen)
            for k, shape in shapes.items()}


def save(path, state_dict, prefix=PREFIX, wrap=False, others=()):
    """Writes `state_dict` under `prefix`, with keys `others` of other modules."""
    state_dict = {**{prefix + k: v for k, v in state_dict.items()}, **{k: torch.zeros(1) for k in others}}
    torch.save(dict(state_dict=state_dict, meta=dict()) if wrap else state_dict, path)
    return str(path)


def config_backbone(config, **init_cfg):
    """The config's image backbone, built alone, with its init_cfg updated."""
    from mmengine.config import Config

    from mmdet3d.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, config)).model.img_backbone
    cfg.init_cfg.update(init_cfg)
    return MODELS.build(cfg)


def assert_holds(module, state_dict):
    """Every parameter and buffer of `module` equals the tensor of the same key."""
    own = module.state_dict()
    assert sorted(own) == sorted(state_dict)
    for key, value in own.items():
        assert torch.equal(value, state_dict[key].to(value.dtype)), key
