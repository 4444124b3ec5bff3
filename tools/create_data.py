"""Thin wrapper around mmdet3d 1.4's own `tools/create_data.py` (shipped in the mmdet3d
package under `mmdet3d/.mim/tools`). Same arguments, e.g.

    python tools/create_data.py nuscenes --root-path ./data/nuscenes \
        --out-dir ./data/nuscenes --extra-tag nuscenes --version v1.0-mini

It only works around two limits of the upstream script, nothing else is changed:
  * `update_infos_to_v2.update_nuscenes_infos` opens NuScenes at the hard-coded
    './data/nuscenes', so any other --root-path (e.g. the generated set) fails: the
    conversion runs in a scratch directory where ./data/nuscenes links to --root-path.
  * `--version v1.0` converts v1.0-trainval *and* v1.0-test; a generated trainval-sized
    set has no test split, so when `<root>/v1.0-test` is missing only trainval is done.
"""
import os
import os.path as osp
import runpy
import sys
import tempfile


def _upstream_script() -> str:
    import mmdet3d
    path = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'tools', 'create_data.py')
    if not osp.isfile(path):
        sys.exit(f'error: {path} not found; is mmdet3d 1.4 installed (tools/setup_env.sh)?')
    return path


def _absolutise(argv):
    out = list(argv)
    for i, a in enumerate(out[:-1]):
        if a in ('--root-path', '--out-dir'):
            out[i + 1] = osp.abspath(out[i + 1])
    return out


def _arg(argv, name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


def main(argv=None):
    argv = _absolutise(sys.argv[1:] if argv is None else argv)
    script = _upstream_script()
    sys.path.insert(0, osp.dirname(osp.dirname(script)))  # makes `tools.dataset_converters` importable
    root = _arg(argv, '--root-path')
    if root is not None and not osp.isdir(root):
        sys.exit(f'error: --root-path {root} is not a directory')
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix='create_data_') as scratch:
        if argv and argv[0] == 'nuscenes' and root is not None:
            os.makedirs(osp.join(scratch, 'data'))
            os.symlink(root, osp.join(scratch, 'data', 'nuscenes'))
            os.chdir(scratch)
        try:
            sys.argv = [script] + argv
            version = _arg(argv, '--version', 'v1.0')
            if argv and argv[0] == 'nuscenes' and version == 'v1.0' \
                    and not osp.isdir(osp.join(root, 'v1.0-test')):
                from mmengine.registry import init_default_scope
                init_default_scope('mmdet3d')
                upstream = runpy.run_path(script, run_name='mmdet3d_create_data')
                extra_tag = _arg(argv, '--extra-tag', 'nuscenes')
                upstream['nuscenes_data_prep'](
                    root_path=root, info_prefix=extra_tag, version='v1.0-trainval',
                    dataset_name='NuScenesDataset', out_dir=_arg(argv, '--out-dir', root),
                    max_sweeps=int(_arg(argv, '--max-sweeps', 10)))
            else:
                runpy.run_path(script, run_name='__main__')
        finally:
            os.chdir(cwd)


if __name__ == '__main__':
    main()
