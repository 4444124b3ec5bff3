"""VoVNet loads the official CMT VoVNet-99 checkpoint completely and freezes stages as the
official `vovnet.py` does."""
import pytest

from tests.helpers.official_checkpoints import (PREFIX, V99, VOV_CONFIG, assert_holds, config_backbone,
                                                official_vovnet_shapes, random_state_dict, save)


@pytest.fixture(scope='module', autouse=True)
def registries():
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401


@pytest.fixture(scope='module')
def v99_official():
    return random_state_dict(official_vovnet_shapes(V99))


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


@pytest.mark.parametrize('frozen_stages, frozen', [(-1, 0), (0, 1), (2, 3)])
def test_frozen_stages_follow_the_official_vovnet(frozen_stages, frozen):
    from plugin.models.backbones import VoVNet
    backbone = VoVNet('V-19-eSE', frozen_stages=frozen_stages)
    backbone.init_weights()
    parts = [backbone.stem] + list(backbone.stages)   # stem, stage2..stage5
    assert [not any(p.requires_grad for p in m.parameters()) for m in parts] == [i < frozen for i in range(5)]
