"""Pretrained image backbones load completely through `StrictPretrained`, or fail loudly.

The checkpoints here are written in the naming of the files the official CMT loads with
`load_from` (hence the `img_backbone.` prefix): its VoVNet-99 (`nn.Sequential(OrderedDict)`
names of the official `vovnet.py`) and a pytorch-style ResNet-50 (torchvision / mmdet names).
The key lists below are derived from those definitions, not from this plugin's modules.
"""
import os.path as osp

import pytest
import torch
from conftest import REPO

R50_CONFIG = 'configs/cmt/cmt_voxel0100_r50-800x320_8xb4-cyclic-20e_nus-3d.py'
VOV_CONFIG = 'configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'
PREFIX = 'img_backbone.'
# official VoVNet specs: stem channels, conv channels, output channels, layers per block, blocks
V19 = ([64, 64, 128], [128, 160, 192, 224], [256, 512, 768, 1024], 3, [1, 1, 1, 1])
V99 = ([64, 64, 128], [128, 160, 192, 224], [256, 512, 768, 1024], 5, [1, 3, 9, 3])


@pytest.fixture(scope='module', autouse=True)
def registries():
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401


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


def vovnet(spec_name='V-19-eSE', **init_cfg):
    from plugin.models.backbones import VoVNet
    return VoVNet(spec_name, init_cfg=dict(type='StrictPretrained', prefix=PREFIX, **init_cfg))


def assert_holds(module, state_dict):
    """Every parameter and buffer of `module` equals the tensor of the same key."""
    own = module.state_dict()
    assert sorted(own) == sorted(state_dict)
    for key, value in own.items():
        assert torch.equal(value, state_dict[key].to(value.dtype)), key


@pytest.fixture(scope='module')
def v99_official():
    return random_state_dict(official_vovnet_shapes(V99))


@pytest.fixture(scope='module')
def v19_official():
    return random_state_dict(official_vovnet_shapes(V19), seed=1)


def test_official_vovnet_keys_map_one_to_one_onto_vovnet(v99_official):
    from plugin.models.backbones import VoVNet
    from plugin.models.backbones.official_vovnet_keys import convert_official_vovnet_keys
    own = VoVNet('V-99-eSE').state_dict()
    converted = convert_official_vovnet_keys({PREFIX + k: v for k, v in v99_official.items()})
    assert len(converted) == len(v99_official) == len(own)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in own.items()}
    pairs = {   # one of each rule: stem, stage 2 (no max-pool), stages 3-5 (max-pool first), BN buffers
        'stem.stem_1/conv.weight': 'stem.0.conv.weight',
        'stem.stem_3/norm.running_var': 'stem.2.bn.running_var',
        'stage2.OSA2_1.layers.0.OSA2_1_0/conv.weight': 'stages.0.0.layers.0.conv.weight',
        'stage3.OSA3_1.layers.4.OSA3_1_4/norm.bias': 'stages.1.1.layers.4.bn.bias',
        'stage4.OSA4_3.concat.OSA4_3_concat/conv.weight': 'stages.2.3.concat.conv.weight',
        'stage4.OSA4_9.concat.OSA4_9_concat/norm.num_batches_tracked': 'stages.2.9.concat.bn.num_batches_tracked',
        'stage5.OSA5_2.ese.fc.bias': 'stages.3.2.ese.fc.bias',
    }
    for official, ours in pairs.items():
        assert converted[ours] is v99_official[official]


@pytest.mark.parametrize('config', [VOV_CONFIG] + [
    f'configs/{d}/cmt-{d}_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py' for d in ('aqr', 'futr', 'sparsebev', 'triplane')])
def test_vov_config_backbone_loads_the_official_checkpoint(config, v99_official, tmp_path):
    """Every full VoV-99 config (CMT and the AQR, neck and triplane configs that inherit it)."""
    path = save(tmp_path / 'fcos3d_vovnet_imgbackbone-remapped.pth', v99_official,
                others=['img_neck.lateral_convs.0.conv.weight'])   # outside the prefix: not used
    backbone = config_backbone(config, checkpoint=path)
    backbone.init_weights()
    from plugin.models.backbones.official_vovnet_keys import convert_official_vovnet_keys
    assert_holds(backbone, convert_official_vovnet_keys(v99_official))


def test_r50_config_backbone_loads_a_pytorch_style_resnet50(tmp_path):
    weights = random_state_dict(resnet50_shapes(), seed=2)
    path = save(tmp_path / 'nuim_r50.pth', weights, wrap=True, others=['img_neck.fpn_convs.0.conv.weight'])
    backbone = config_backbone(R50_CONFIG, checkpoint=path)
    assert backbone.style == 'pytorch' and backbone.with_cp and backbone.norm_eval
    backbone.init_weights()
    assert_holds(backbone, weights)


def test_a_missing_key_fails_naming_file_and_key(v19_official, tmp_path):
    weights = dict(v19_official)
    del weights['stage3.OSA3_1.layers.2.OSA3_1_2/conv.weight']
    path = save(tmp_path / 'v19.pth', weights)
    with pytest.raises(RuntimeError, match=r'v19\.pth.*1 missing keys: stages\.1\.1\.layers\.2\.conv\.weight'):
        vovnet(checkpoint=path).init_weights()


def test_an_extra_key_fails_naming_it(v19_official, tmp_path):
    path = save(tmp_path / 'v19.pth', {**v19_official, 'stage5.OSA5_1.ese.fc2.weight': torch.zeros(1)})
    with pytest.raises(RuntimeError, match=r'1 unexpected keys: stage5\.OSA5_1\.ese\.fc2\.weight'):
        vovnet(checkpoint=path).init_weights()


def test_a_shape_mismatch_fails_naming_it(v19_official, tmp_path):
    path = save(tmp_path / 'v19.pth', {**v19_official, 'stage2.OSA2_1.ese.fc.bias': torch.zeros(3)})
    with pytest.raises(RuntimeError, match=r'1 shape mismatches: stages\.0\.0\.ese\.fc\.bias \(file \(3,\), '
                                           r'module \(256,\)\)'):
        vovnet(checkpoint=path).init_weights()


def test_allow_partial_warns_and_loads_the_matching_keys(v19_official, tmp_path):
    from plugin.models.backbones.official_vovnet_keys import convert_official_vovnet_keys
    weights = dict(v19_official)
    del weights['stem.stem_2/conv.weight']
    path = save(tmp_path / 'v19.pth', {**weights, 'classifier.weight': torch.zeros(1)})
    backbone = vovnet(checkpoint=path, allow_partial=True)
    before = backbone.stem[1].conv.weight.clone()
    with pytest.warns(UserWarning, match=r'1 missing keys: stem\.1\.conv\.weight; 1 unexpected keys: '
                                         r'classifier\.weight; loading the matching keys only'):
        backbone.init_weights()
    assert torch.equal(backbone.stem[1].conv.weight, before)
    expected = {**convert_official_vovnet_keys(weights), 'stem.1.conv.weight': before}
    assert_holds(backbone, expected)


def test_a_missing_file_fails_unless_allowed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # the configs' relative paths name nothing here
    with pytest.raises(FileNotFoundError, match=r'ckpts/nuim_r50\.pth not found.*allow_missing_file=True'):
        config_backbone(R50_CONFIG).init_weights()
    backbone = config_backbone(VOV_CONFIG, allow_missing_file=True)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    with pytest.warns(UserWarning, match=r'fcos3d_vovnet_imgbackbone-remapped\.pth not found'):
        backbone.init_weights()
    assert_holds(backbone, before)


def test_a_prefix_with_no_keys_fails_naming_it(v19_official, tmp_path):
    path = save(tmp_path / 'v19.pth', v19_official, prefix='backbone.')
    with pytest.raises(ValueError, match=r"v19\.pth.*no key starts with 'img_backbone\.'; its keys begin "
                                         r'backbone\.stem'):
        vovnet(checkpoint=path).init_weights()


def test_official_prefixes_are_removed_without_a_prefix_setting(v19_official, tmp_path):
    from plugin.models.backbones import VoVNet
    from plugin.models.backbones.official_vovnet_keys import convert_official_vovnet_keys
    path = save(tmp_path / 'v19.pth', v19_official, prefix='backbone.bottom_up.')
    backbone = VoVNet('V-19-eSE', init_cfg=dict(type='StrictPretrained', checkpoint=path))
    backbone.init_weights()
    assert_holds(backbone, convert_official_vovnet_keys(v19_official))


def test_conversion_keeps_other_keys_and_rejects_collisions():
    from plugin.models.backbones.official_vovnet_keys import convert_official_vovnet_keys
    keys = ['stem.0.conv.weight', 'img_neck.fpn.weight', 'stage2.OSA3_1.ese.fc.bias',
            'stage2.OSA2_1.layers.0.OSA2_1_1/conv.weight']   # ours, another module, inconsistent names
    assert list(convert_official_vovnet_keys(dict.fromkeys(keys))) == keys
    with pytest.raises(ValueError, match=r"'stem\.stem_1/conv\.weight' and 'stem\.0\.conv\.weight' both map"):
        convert_official_vovnet_keys(dict.fromkeys(['stem.stem_1/conv.weight', 'stem.0.conv.weight']))


@pytest.mark.parametrize('frozen_stages, frozen', [(-1, 0), (0, 1), (2, 3)])
def test_frozen_stages_follow_the_official_vovnet(frozen_stages, frozen):
    from plugin.models.backbones import VoVNet
    backbone = VoVNet('V-19-eSE', frozen_stages=frozen_stages)
    backbone.init_weights()
    parts = [backbone.stem] + list(backbone.stages)   # stem, stage2..stage5
    assert [not any(p.requires_grad for p in m.parameters()) for m in parts] == [i < frozen for i in range(5)]


def test_importing_the_plugin_changes_no_global_behaviour():
    """`import plugin` leaves torch.cuda.set_device, numpy and mmengine's local checkpoint
    loader alone; the tools apply the workarounds (plugin.compat.apply)."""
    import subprocess
    import sys
    code = '''
import numpy, torch
from mmengine.runner.checkpoint import CheckpointLoader
before = (torch.cuda.set_device, torch.load, CheckpointLoader._schemes[''], hasattr(numpy, 'long'))
import plugin
after = (torch.cuda.set_device, torch.load, CheckpointLoader._schemes[''], hasattr(numpy, 'long'))
assert all(a is b for a, b in zip(before[:3], after[:3])) and before[3] == after[3], 'changed'
plugin.compat.apply()
assert CheckpointLoader._schemes[''] is not before[2] and hasattr(numpy, 'long')
print('ok')
'''
    res = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], capture_output=True, text=True)
    assert res.stdout.strip().endswith('ok'), res.stderr[-2000:]
