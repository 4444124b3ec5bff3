"""Rename VoVNet checkpoint keys from the official naming to this plugin's `VoVNet`.

The VoVNet of DD3D (https://github.com/TRI-ML/dd3d), copied by DETR3D, PETR and CMT
(https://github.com/junjie18/CMT, `mmdet3d_plugin/models/backbones/vovnet.py`), names its
layers through `nn.Sequential(OrderedDict(...))`, so its pretrained files (e.g. CMT's
`fcos3d_vovnet_imgbackbone-remapped.pth`) hold keys such as

    stem.stem_1/conv.weight                          -> stem.0.conv.weight
    stem.stem_3/norm.running_mean                    -> stem.2.bn.running_mean
    stage2.OSA2_1.layers.0.OSA2_1_0/conv.weight      -> stages.0.0.layers.0.conv.weight
    stage4.OSA4_3.concat.OSA4_3_concat/norm.weight   -> stages.2.3.concat.bn.weight
    stage5.OSA5_2.ese.fc.bias                        -> stages.3.2.ese.fc.bias

Stage `stageS` becomes `stages.{S-2}`; block `OSAS_B` becomes entry `B-1` of stage 2 and
entry `B` of stages 3-5, whose entry 0 is the max-pool; `/conv` and `/norm` become the
`ConvModule` children `conv` and `bn`. An optional leading `module.`, `img_backbone.`,
`backbone.` or `backbone.bottom_up.` (DataParallel, a CMT/DETR3D detector, a detectron2
detector) is removed from official keys. Keys that are not in the official naming are kept
as they are, so the loader reports them instead of this function dropping them.
"""
import re
from typing import Dict, Optional

_PREFIX = r'(?:module\.)?(?:img_backbone\.|backbone\.(?:bottom_up\.)?)?'
_STEM = re.compile(_PREFIX + r'stem\.stem_([1-9])/(conv|norm)\.(\w+)')
_BLOCK = re.compile(_PREFIX + r'stage([2-5])\.(OSA\1_([1-9]\d*))\.(.+)')
_CHILD = {'conv': 'conv', 'norm': 'bn'}


def _convert_block_part(osa: str, rest: str) -> Optional[str]:
    """`rest` of a key below block `osa` (e.g. 'OSA3_2') in this plugin's `OSABlock` naming."""
    layer = re.fullmatch(rf'layers\.(\d+)\.{osa}_\1/(conv|norm)\.(\w+)', rest)
    if layer:
        return f'layers.{layer[1]}.{_CHILD[layer[2]]}.{layer[3]}'
    concat = re.fullmatch(rf'concat\.{osa}_concat/(conv|norm)\.(\w+)', rest)
    if concat:
        return f'concat.{_CHILD[concat[1]]}.{concat[2]}'
    if re.fullmatch(r'ese\.fc\.(weight|bias)', rest):
        return rest
    return None


def convert_official_vovnet_key(key: str) -> str:
    """One key in this plugin's naming; `key` itself when it is not an official VoVNet key."""
    stem = _STEM.fullmatch(key)
    if stem:
        return f'stem.{int(stem[1]) - 1}.{_CHILD[stem[2]]}.{stem[3]}'
    block = _BLOCK.fullmatch(key)
    if block:
        stage, osa, index, rest = int(block[1]), block[2], int(block[3]), block[4]
        part = _convert_block_part(osa, rest)
        if part is not None:
            return f'stages.{stage - 2}.{index - 1 + (stage > 2)}.{part}'
    return key


def convert_official_vovnet_keys(state_dict: Dict) -> Dict:
    """A new state dict with every official key renamed (see the module docstring).

    Raises:
        ValueError: two keys of `state_dict` end up with the same name.
    """
    converted = {}
    source = {}
    for key, value in state_dict.items():
        new_key = convert_official_vovnet_key(key)
        if new_key in converted:
            raise ValueError(f'VoVNet checkpoint keys {source[new_key]!r} and {key!r} both map to {new_key!r}')
        converted[new_key], source[new_key] = value, key
    return converted
