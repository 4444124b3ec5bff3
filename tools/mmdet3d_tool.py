"""Runs one of mmdet3d 1.4's own tools (train.py / test.py, shipped in the mmdet3d package
under `mmdet3d/.mim/tools`) after importing this project, so users get exactly
mmdet3d's command line (`--cfg-options`, `--work-dir`, `--resume`, `--amp`, `--launcher`).

Additions, nothing else:
  * `import plugin` first (registers our modules), then `plugin.compat.apply()` (e.g.
    loading the user's local mmengine checkpoints under torch's weights-only default);
  * the merged config (with `--cfg-options`) is checked first (plugin/engine/config_check.py):
    an unknown `type` or an invalid number fails at once, naming the config key;
  * distributed runs on a machine without CUDA use the gloo backend (NCCL needs GPUs) and
    a DDP wrapper without device ids (see plugin/compat.py);
  * test.py loads the checkpoint strictly (`StrictLoadRunner`): a checkpoint that does not
    fill the model exactly is an error naming the keys, not a partly random model;
  * a distributed run ends by destroying its process group (`close_process_group`).
"""
import os.path as osp
import runpy
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def check(argv: list) -> None:
    """Runs check_config on the config the tool will build (its first argument)."""
    import argparse

    from mmengine.config import Config, DictAction

    from plugin.engine.config_check import ConfigError, check_config
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args, _ = parser.parse_known_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        check_config(cfg)
    except ConfigError as err:   # a message for the user, not a traceback
        raise SystemExit(f'config error in {args.config}: {err}') from None


def run(tool: str):
    import mmdet3d
    import torch

    import plugin
    plugin.compat.apply()
    script = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'tools', tool)
    argv = sys.argv[1:]
    if argv and not argv[0].startswith('-'):
        check(argv)
    launcher = argv[argv.index('--launcher') + 1] if '--launcher' in argv else 'none'
    extra = ['runner_type=StrictLoadRunner'] if tool == 'test.py' else []
    if launcher != 'none' and not torch.cuda.is_available():
        extra += ['env_cfg.dist_cfg.backend=gloo', 'model_wrapper_cfg.type=CPUDistributedDataParallel',
                  'model_wrapper_cfg.broadcast_buffers=False']
    if extra:
        if '--cfg-options' in argv:
            argv[argv.index('--cfg-options') + 1:argv.index('--cfg-options') + 1] = extra
        else:
            argv += ['--cfg-options'] + extra
    sys.argv = [script] + argv
    runpy.run_path(script, run_name='__main__')
    close_process_group()


def close_process_group() -> None:
    """Waits for every rank, then destroys the default process group.

    mmengine's Runner never destroys it, so gloo's background threads are still alive when
    the interpreter shuts down, and a rank of a finished run can abort at exit
    ("terminate called without an active exception", SIGABRT), which fails the whole run
    (pytorch/pytorch#179291 describes the teardown race). Called only after the tool
    returned normally: a rank that raised exits non-zero anyway."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
