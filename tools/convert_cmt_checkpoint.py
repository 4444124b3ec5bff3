"""Convert an official CMT checkpoint (github.com/junjie18/CMT) for this plugin's configs.

    python tools/convert_cmt_checkpoint.py SRC.pth DST.pth [--config CONFIG]

Without --config the target config is chosen by the checkpoint's image backbone (VoVNet:
configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py, ResNet: the R50 config).
The config's model is built on the CPU (no pretrained files are read) and the converted
weights must fill it exactly: the tool refuses, naming the keys, a checkpoint it cannot map
completely. The result loads with `tools/test.py CONFIG DST.pth` (strict).
"""
import argparse
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
CONFIGS = {'vovnet': 'configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py',
           'resnet': 'configs/cmt/cmt_voxel0100_r50-800x320_8xb4-cyclic-20e_nus-3d.py'}


def build_target(config: str):
    """The config's model, built without initialising (no pretrained file is read)."""
    from mmengine.config import Config
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    cfg = Config.fromfile(config)
    return cfg, MODELS.build(cfg.model)


def convert(src: str, dst: str, config: str = None) -> str:
    from plugin.models.official_cmt_keys import convert_official_cmt
    ckpt = torch.load(src, map_location='cpu', weights_only=False)
    state = ckpt.get('state_dict', ckpt)
    if config is None:
        backbone = 'vovnet' if any(k.startswith('img_backbone.stem.') for k in state) else 'resnet'
        config = osp.join(ROOT, CONFIGS[backbone])
    cfg, model = build_target(config)
    target = model.state_dict()
    converted = convert_official_cmt(state, cfg.class_names, target)
    model.load_state_dict(converted, strict=True)
    meta = dict(ckpt.get('meta', {}) or {}, converted_from=osp.basename(src), config=osp.relpath(config, ROOT),
                dataset_meta=dict(classes=list(cfg.class_names)))
    torch.save(dict(state_dict=converted, meta=meta), dst)
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official CMT checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--config', help='target config (default: chosen by the image backbone)')
    args = parser.parse_args(argv)
    from plugin.models.official_cmt_keys import CheckpointMismatch
    try:
        config = convert(args.src, args.dst, args.config)
    except CheckpointMismatch as err:
        sys.exit(f'convert_cmt_checkpoint: {args.src}: {err}')
    print(f'{args.dst}: loads strictly into {config}')


if __name__ == '__main__':
    main()
