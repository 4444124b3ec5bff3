"""Convert an official CMT checkpoint (github.com/junjie18/CMT, mmdet3d 1.0.0rc5 / mmcv 1.x
naming) into this plugin's `CmtDetector` naming, so that the converted model computes the
same function.

What changes besides the names:
* attention: the official decoder's self-attention (mmcv `MultiheadAttention` around
  `nn.MultiheadAttention`) and cross-attention (flash-attn `FlashMHA`) keep q, k and v in
  one `in_proj_weight` [3C, C] / `in_proj_bias` [3C]; ours has `q_proj`, `k_proj`, `v_proj`;
* classes: the official class order (`OFFICIAL_CLASSES`) is permuted into the target config's
  `class_names` in the rows of the classification output (one block of rows per decoder
  layer, since the task head runs the layers as groups);
* sparse convolutions keep the mmcv 1.x kernel layout [kD, kH, kW, in, out]: mmdet3d's
  spconv 2 layers permute such kernels to [out, kD, kH, kW, in] when they load a state dict
  without spconv 2 metadata, as a converted one is;
* VoVNet backbone keys follow `convert_official_vovnet_key`; ResNet, CPFPN laterals, SECOND,
  SECONDFPN, the sparse encoder, the decoder norms and FFNs keep their names.

The box code order (the official regression branches' concatenation is read as
cx, cy, log dx, log dy, cz, log dz, ...) is not a weight matter: the head reproduces it with
`code_layout='cmt'`. Every official key must be mapped and every target key filled; the
conversion refuses a checkpoint otherwise and names the keys.
"""
import re
from typing import Dict, List, Optional, Sequence

from torch import Tensor

from .backbones.official_vovnet_keys import convert_official_vovnet_key

OFFICIAL_CLASSES = ('car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier', 'motorcycle',
                    'bicycle', 'pedestrian', 'traffic_cone')
_HEAD = 'pts_bbox_head.'
_RENAMES = [  # (official pattern, our replacement), applied to keys without the head's prefix
    (r'shared_conv\.(conv|bn)\.(.+)', r'bev_proj.\1.\2'),
    (r'(bev_embedding|rv_embedding)\.([02])\.(weight|bias)', r'\1.mlp.\2.\3'),
    (r'reference_points\.weight', r'reference_points.weight'),
    (r'transformer\.decoder\.layers\.(\d+)\.attentions\.0\.attn\.out_proj\.(weight|bias)',
     r'transformer.decoder.layers.\1.self_attn.out_proj.\2'),
    (r'transformer\.decoder\.layers\.(\d+)\.attentions\.1\.attn\.out_proj\.(weight|bias)',
     r'transformer.decoder.layers.\1.cross_attn.out_proj.\2'),
    (r'transformer\.decoder\.layers\.(\d+)\.ffns\.0\.layers\.(0\.0|1)\.(weight|bias)',
     r'transformer.decoder.layers.\1.ffn.layers.\2.\3'),
    (r'transformer\.decoder\.layers\.(\d+)\.norms\.([0-2])\.(weight|bias)',
     r'transformer.decoder.layers.\1.norms.\2.\3'),
    (r'transformer\.decoder\.post_norm\.(weight|bias)', r'transformer.decoder.post_norm.\1'),
    (r'task_heads\.(\d+)\.(center|height|dim|rot|vel)\.(\d+)\.(weight|bias)', r'task_heads.\1.branches.\2.\3.\4'),
    (r'task_heads\.(\d+)\.cls_logits\.(\d+)\.(weight|bias)', r'task_heads.\1.branches.cls.\2.\3'),
]
_IN_PROJ = re.compile(r'transformer\.decoder\.layers\.(\d+)\.attentions\.([01])\.attn\.in_proj_(weight|bias)')
_KEEP = ('img_neck.lateral_convs.', 'pts_middle_encoder.', 'pts_backbone.', 'pts_neck.')


class CheckpointMismatch(ValueError):
    """An official checkpoint that cannot be mapped completely onto the target model."""


def _listing(keys: Sequence[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def _rename(key: str) -> Optional[str]:
    """Our name of one official key (None: not an official CMT key)."""
    if key.startswith('img_backbone.'):
        new = convert_official_vovnet_key(key[len('img_backbone.'):])
        return 'img_backbone.' + new
    if key.startswith('img_neck.fpn_convs.0.'):
        return 'img_neck.fpn_conv.' + key[len('img_neck.fpn_convs.0.'):]
    if key.startswith(_KEEP):
        return key
    if key.startswith(_HEAD):
        rest = key[len(_HEAD):]
        for pattern, repl in _RENAMES:
            if re.fullmatch(pattern, rest):
                return _HEAD + re.sub(pattern, repl, rest)
    return None


def _permute_classes(value: Tensor, order: List[int]) -> Tensor:
    """Rows of a (grouped) class output: one block of len(order) rows per decoder layer."""
    n = len(order)
    if value.shape[0] % n:
        raise CheckpointMismatch(f'class output with {value.shape[0]} rows is not a multiple of {n} classes')
    blocks = value.view(value.shape[0] // n, n, *value.shape[1:])
    return blocks[:, order].reshape(value.shape)


def _shapes_fit(value: Tensor, target: Tensor) -> bool:
    """Equal shapes, or an mmcv 1.x sparse kernel that mmdet3d permutes into a spconv 2 one."""
    return value.shape == target.shape or (value.dim() == 5 and value.permute(4, 0, 1, 2, 3).shape == target.shape)


def convert_official_cmt(state_dict: Dict[str, Tensor], class_names: Sequence[str],
                         target: Optional[Dict[str, Tensor]] = None) -> Dict[str, Tensor]:
    """The official `state_dict` in our naming.

    Args:
        state_dict: the official checkpoint's `state_dict`.
        class_names: the target config's class order (a permutation of `OFFICIAL_CLASSES`).
        target: the target model's state dict; when given, the result must fill it exactly
            (same keys, same shapes) or CheckpointMismatch names what differs.
    """
    if sorted(class_names) != sorted(OFFICIAL_CLASSES):
        raise CheckpointMismatch(f'class_names {list(class_names)} are not the official CMT classes '
                                 f'{list(OFFICIAL_CLASSES)}')
    order = [OFFICIAL_CLASSES.index(c) for c in class_names]
    tasks = {k.split('.')[2] for k in state_dict if k.startswith(_HEAD + 'task_heads.')}
    if len(tasks) > 1:
        raise CheckpointMismatch(f'the checkpoint has {len(tasks)} task heads; official CMT (and this '
                                 'conversion) uses one 10-class task')
    out: Dict[str, Tensor] = {}
    unmapped = []
    for key, value in state_dict.items():
        proj = _IN_PROJ.fullmatch(key[len(_HEAD):]) if key.startswith(_HEAD) else None
        if proj:
            layer, which, kind = proj.groups()
            name = 'self_attn' if which == '0' else 'cross_attn'
            for part, chunk in zip('qkv', value.chunk(3, 0)):
                out[f'{_HEAD}transformer.decoder.layers.{layer}.{name}.{part}_proj.{kind}'] = chunk.clone()
            continue
        new = _rename(key)
        if new is None:
            unmapped.append(key)
            continue
        if _is_last_cls(state_dict, key):
            value = _permute_classes(value, order)
        if new in out:
            raise CheckpointMismatch(f'official keys map twice onto {new!r}')
        out[new] = value
    if unmapped:
        raise CheckpointMismatch(f'{len(unmapped)} keys of the checkpoint are not official CMT keys: '
                                 f'{_listing(unmapped)}')
    if target is not None:
        missing = set(target) - set(out)
        unexpected = set(out) - set(target)
        wrong = [f'{k} {tuple(out[k].shape)} vs {tuple(target[k].shape)}' for k in set(out) & set(target)
                 if not _shapes_fit(out[k], target[k])]
        if missing or unexpected or wrong:
            raise CheckpointMismatch(
                'the checkpoint does not fill the target model: '
                + '; '.join(part for part in (
                    f'missing {len(missing)}: {_listing(missing)}' if missing else '',
                    f'unexpected {len(unexpected)}: {_listing(unexpected)}' if unexpected else '',
                    f'shape mismatch {len(wrong)}: {_listing(wrong)}' if wrong else '') if part))
    return out


def _is_last_cls(state_dict: Dict[str, Tensor], key: str) -> bool:
    """Whether `key` belongs to the last (output) layer of a task's class branch."""
    m = re.fullmatch(r'pts_bbox_head\.task_heads\.(\d+)\.cls_logits\.(\d+)\.(weight|bias)', key)
    if not m:
        return False
    prefix = f'pts_bbox_head.task_heads.{m[1]}.cls_logits.'
    last = max(int(k[len(prefix):].split('.')[0]) for k in state_dict if k.startswith(prefix))
    return int(m[2]) == last
