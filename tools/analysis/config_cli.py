"""The `CONFIG [--cfg-options k=v ...]` arguments every analysis tool takes, loaded the way
mmdet3d's tools/train.py loads them (Config.fromfile, then merge_from_dict)."""
import argparse

from mmengine.config import Config, DictAction


def config_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the positional CONFIG and `--cfg-options`; tools add the rest."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys, e.g. model.pts_bbox_head.aqr_cfg.bias.window_size=5')
    return p


def load_config(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg
