"""Pretrained weights that load completely or fail loudly, as an mmengine weight initialiser:

    init_cfg=dict(type='StrictPretrained', checkpoint=PATH, prefix=None,
                  allow_partial=False, allow_missing_file=False)

mmengine's `Pretrained` (`PretrainedInit`) loads with `strict=False` and only logs what did
not match, so a checkpoint in another naming leaves a backbone at its random values without
an error. This initialiser reads the file with mmengine's checkpoint loader, keeps the keys
under `prefix` (with the prefix removed; e.g. `'img_backbone.'` for a detector checkpoint
meant for `load_from`), lets the module rename them when it defines
`convert_pretrained_keys(state_dict)` (VoVNet does, for the official DD3D/CMT naming) and
compares them with the module's parameters and buffers:

- a missing, unexpected or differently shaped key raises a `RuntimeError` that names the
  file and the keys; with `allow_partial=True` it is a warning and the matching keys load;
- a local checkpoint file that does not exist raises `FileNotFoundError`; with
  `allow_missing_file=True` it is a warning and the module keeps its random initialisation.

BatchNorm's `num_batches_tracked` may be absent from the file, as in mmengine's loader.
mmengine applies its own `Pretrained` after the module's children are initialised; this
initialiser runs where other `init_cfg` entries run, so it suits modules whose children do
not re-initialise themselves in `init_weights` (VoVNet, mmdet's ResNet with this init_cfg).
"""
import os.path as osp
import warnings

from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from mmengine.runner.checkpoint import _load_checkpoint

SHOWN_KEYS = 5   # keys named per kind of mismatch; the counts are always complete


def _key_list(keys) -> str:
    shown = ', '.join(keys[:SHOWN_KEYS])
    return shown + (f', ... ({len(keys) - SHOWN_KEYS} more)' if len(keys) > SHOWN_KEYS else '')


@WEIGHT_INITIALIZERS.register_module()
class StrictPretrained(PretrainedInit):
    """Args:
        checkpoint: local path or any URI mmengine's checkpoint loader reads.
        prefix: load only the keys starting with it (removed); None: all keys.
        map_location: as in `torch.load`.
        allow_partial: warn instead of raising when keys or shapes do not match.
        allow_missing_file: warn instead of raising when the local file does not exist.
    """

    def __init__(self, checkpoint: str, prefix=None, map_location='cpu', allow_partial: bool = False,
                 allow_missing_file: bool = False):
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)
        self.allow_partial, self.allow_missing_file = allow_partial, allow_missing_file

    def __call__(self, module):
        name = type(module).__name__
        source = f'checkpoint {self.checkpoint}' + (f' (prefix {self.prefix!r})' if self.prefix else '')
        if '://' not in self.checkpoint and not osp.isfile(osp.expanduser(self.checkpoint)):
            msg = (f'{name}: pretrained checkpoint {self.checkpoint} not found '
                   f'(resolved to {osp.abspath(osp.expanduser(self.checkpoint))})')
            if not self.allow_missing_file:
                raise FileNotFoundError(msg + '; put the file there, or set allow_missing_file=True in the '
                                        'init_cfg to keep the random initialisation')
            warnings.warn(msg + '; keeping the random initialisation')
            return
        state_dict = self._read(name, source)
        convert = getattr(module, 'convert_pretrained_keys', None)
        if convert is not None:
            state_dict = convert(state_dict)
        expected = module.state_dict()
        self._check(name, expected, state_dict, source)
        module.load_state_dict({k: v for k, v in state_dict.items()
                                if k in expected and v.shape == expected[k].shape}, strict=False)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _read(self, name: str, source: str) -> dict:
        checkpoint = _load_checkpoint(self.checkpoint, map_location=self.map_location)
        if not isinstance(checkpoint, dict):
            raise RuntimeError(f'{source} holds a {type(checkpoint).__name__}, not a state dict')
        state_dict = checkpoint.get('state_dict', checkpoint)
        if self.prefix is None:
            print_log(f'{name}: load {source}', logger='current')
            return dict(state_dict)
        selected = {k[len(self.prefix):]: v for k, v in state_dict.items() if k.startswith(self.prefix)}
        if not selected:
            raise ValueError(f'{source}: no key starts with {self.prefix!r}; its keys begin '
                             f'{_key_list(list(state_dict))}')
        print_log(f'{name}: load {source}: {len(selected)} keys under the prefix, '
                  f'{len(state_dict) - len(selected)} other keys not used', logger='current')
        return selected

    def _check(self, name: str, expected: dict, state_dict: dict, source: str):
        missing = [k for k in expected if k not in state_dict and not k.endswith('num_batches_tracked')]
        unexpected = [k for k in state_dict if k not in expected]
        mismatched = [f'{k} (file {tuple(v.shape)}, module {tuple(expected[k].shape)})'
                      for k, v in state_dict.items() if k in expected and v.shape != expected[k].shape]
        problems = [f'{len(keys)} {kind}: {_key_list(keys)}' for kind, keys in
                    (('missing keys', missing), ('unexpected keys', unexpected), ('shape mismatches', mismatched))
                    if keys]
        if not problems:
            return
        msg = f'{name}: {source} does not match the module; ' + '; '.join(problems)
        if not self.allow_partial:
            raise RuntimeError(msg + '. Fix the file or the prefix, or set allow_partial=True in the init_cfg '
                               'to load the matching keys only')
        warnings.warn(msg + '; loading the matching keys only (allow_partial=True)')
