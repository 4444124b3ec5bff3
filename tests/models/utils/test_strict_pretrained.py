"""Pretrained weights load completely through `StrictPretrained`, or fail naming the
file and the key."""
import pytest
import torch

from tests.helpers.official_checkpoints import (PREFIX, V19, VOV_CONFIG, assert_holds, config_backbone,
                                                official_vovnet_shapes, random_state_dict, resnet50_shapes, save)

R50_CONFIG = 'configs/cmt/cmt_voxel0100_r50-800x320_8xb4-cyclic-20e_nus-3d.py'


@pytest.fixture(scope='module', autouse=True)
def registries():
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401


def vovnet(spec_name='V-19-eSE', **init_cfg):
    from plugin.models.backbones import VoVNet
    return VoVNet(spec_name, init_cfg=dict(type='StrictPretrained', prefix=PREFIX, **init_cfg))


@pytest.fixture(scope='module')
def v19_official():
    return random_state_dict(official_vovnet_shapes(V19), seed=1)


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
