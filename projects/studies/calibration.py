"""Calibration-noise study: NDS of several detectors as their cameras' calibration degrades.

    python projects/studies/calibration.py                     # 4 models x seeds 0 1
    python projects/studies/calibration.py --seeds 0 --models cmt futr
    python projects/studies/calibration.py --report-only       # tables from finished runs

Claim under test: fusion that samples the images at projected points (SparseBEV-style, and
FuTr's spatial path) degrades more gracefully under calibration error than attention over
all camera tokens (CMT's position-embedded keys). A rotation of 1 degree moves a projection
near the image centre by f * tan(1 deg) pixels, i.e. `cells_per_degree` feature cells
(printed with the table): about 0.24 at the synthetic configs' 256x144 input and stride-16
maps, so the rotations go up to 16 degrees (several cells). `--image-size W H` and
`--stride 4|8|16` train at another input size and feature stride (320x180 at stride 4 gives
~1.2 cells per degree); `--zoom Z` enlarges the views Z times more and crops their centre
(`--zoom 5` at 256x144 and stride 16: ~1.2 cells per degree at the configs' cost, for a
field of view 5x narrower). Every model is trained with each seed given through
`tools/train.py`; then `tools/robustness_eval.py` tests each checkpoint clean and under the
calibration scenarios of `configs/robustness/scenarios.py` (every camera rotated by 0.5 /
1 / 2 / 4 / 8 / 16 degrees (`--rotations`), or moved by 5 / 20 cm, the same draw for every
model) and with every camera blank (how much the model uses its cameras at all). Writes
to the work root:
    <model>_seed<S>/            the training run, its config (`study_config.py`) and robustness/
    calibration_study.md        NDS (mean +- std over seeds) per model and noise level
    calibration_study.json      every run's figures
    calibration_study.png       NDS against rotation noise and against translation noise
A run is reused when its checkpoint exists and its robustness.json covers the requested
scenarios, so the study can be resumed; a run directory of another config or seed is
refused (`runs.py`).
"""
import argparse
import json
import math
import os
import os.path as osp
from typing import Optional

from runs import collect_runs, mean_std, train_and_test

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_SYNTHETIC = 'configs/synthetic/{}_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'
MODELS = {'cmt': _SYNTHETIC.format('cmt'), 'aqr': _SYNTHETIC.format('cmt-aqr'),
          'futr': _SYNTHETIC.format('cmt-futr'), 'sparsebev': _SYNTHETIC.format('cmt-sparsebev')}
ROTATIONS = {0.5: 'calib_0.5deg', 1.0: 'calib_1deg', 2.0: 'calib_2deg', 4.0: 'calib_4deg', 8.0: 'calib_8deg',
             16.0: 'calib_16deg'}
TRANSLATIONS = {5.0: 'calib_5cm', 20.0: 'calib_20cm'}
CAMERAS_BLANK = 'camera_all_drop'   # how much a model uses its cameras at all
RESNET_CHANNELS = {18: [64, 128, 256, 512], 34: [64, 128, 256, 512]}


def study_config(config: str, image_size=None, stride: Optional[int] = None, zoom: Optional[float] = None,
                 view_size: Optional[tuple] = None):
    """`config`, with every image resize producing `image_size` (width, height), the image
    branch reading ResNet's stride-`stride` level as its finest map, and, with `zoom`, every
    view enlarged `zoom` times more than the config does and cropped around its centre row
    (a narrower field of view at the same input size: more feature cells per degree at the
    same cost, the JPEGs decoded at a resolution the zoom does not have to upsample);
    `view_size` is the (width, height) of the camera images (default: the first test image's)."""
    from mmengine.config import Config
    from plugin.datasets.dataset_config import innermost_dataset_cfg
    cfg = Config.fromfile(osp.join(ROOT, config))
    if image_size is None and stride is None and zoom is None:
        return cfg
    if stride is None:
        stride = 4 * 2 ** min(cfg.model.img_backbone.out_indices)
    if image_size is None:
        image_size = cfg.image_size
    backbone = cfg.model.img_backbone
    depth = backbone.get('depth')
    if backbone.get('type') != 'mmdet.ResNet' or depth not in RESNET_CHANNELS:
        raise ValueError(f'{config}: model.img_backbone must be mmdet.ResNet-18/34 to change its stride, got '
                         f'{backbone.get("type")} depth {depth}')
    if stride not in (4, 8, 16):
        raise ValueError(f'--stride must be 4, 8 or 16, got {stride}')
    first = int(math.log2(stride)) - 2
    backbone.out_indices = tuple(range(first, 4))
    cfg.model.img_neck.in_channels = RESNET_CHANNELS[depth][first:]
    if zoom is not None and view_size is None:
        view_size = first_view_size(cfg)
    resized = 0
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = innermost_dataset_cfg(cfg[loader].dataset, 'pipeline')
        for step in dataset.pipeline:
            if step['type'] == 'MultiViewImageResizeCrop':
                step['final_size'] = tuple(image_size)
                if zoom is not None:
                    _zoom_step(step, zoom, view_size, config)
                    _decode_for(step, dataset.pipeline, view_size)
                resized += 1
    if resized < 3:
        raise ValueError(f'{config}: expected a MultiViewImageResizeCrop in each data loader, found {resized}')
    cfg.image_size = tuple(image_size)
    return cfg


def _zoom_step(step: dict, zoom: float, view_size: tuple, config: str):
    """Scales a MultiViewImageResizeCrop's `resize_lim` by `zoom` and sets its `bot_pct_lim`
    so that the crop is centred on the resized view's middle row at the mean scale (the
    transform's default rule keeps the bottom rows, which a strong zoom fills with road)."""
    if zoom < 1:
        raise ValueError(f'{config}: --zoom must be >= 1, got {zoom}')
    if step.get('bot_pct_lim') is not None or step.get('test_scale', 'mean') != 'mean':
        raise ValueError(f'{config}: MultiViewImageResizeCrop sets bot_pct_lim or test_scale; --zoom sets the '
                         'crop itself and needs the test scale to be the mean of resize_lim')
    step['resize_lim'] = tuple(zoom * r for r in step.get('resize_lim', (1.0, 1.0)))
    final_w, final_h = step['final_size']
    aspect = view_size[1] / view_size[0]
    new_h = aspect * final_w * sum(step['resize_lim']) / 2
    bottom = 0.5 - final_h / (2 * new_h)
    # the crop's top row is (1 - bottom) * rows - final_h: centred at the mean scale, off by
    # final_h / 2 * (scale / mean - 1) rows at the others, and inside the view at the smallest
    smallest = aspect * final_w * step['resize_lim'][0]
    if (1 - bottom) * smallest < final_h:
        raise ValueError(f'{config}: --zoom {zoom} resizes the views to as few as {smallest:.0f} rows, too few '
                         f'for a centred crop of {final_h}')
    step['bot_pct_lim'] = (bottom, bottom)


def _decode_for(step: dict, pipeline: list, view_size: tuple):
    """Lowers the JPEG decoding reduction of the pipeline's LoadMultiViewImageFromFilesReduced
    until the decoded width covers the largest resized width of `step`."""
    widest = step['final_size'][0] * step['resize_lim'][1]
    for load in pipeline:
        if load['type'] == 'LoadMultiViewImageFromFilesReduced':
            while load.get('reduce', 1) > 1 and view_size[0] / load['reduce'] < widest:
                load['reduce'] //= 2


def first_view_size(cfg) -> tuple:
    """(width, height) of the first camera image of the config's test set."""
    import mmcv
    from mmengine.fileio import load
    from plugin.datasets.dataset_config import innermost_dataset_cfg
    dataset = innermost_dataset_cfg(cfg.test_dataloader.dataset, 'data_root')
    info = load(osp.join(ROOT, dataset.data_root, dataset.ann_file))['data_list'][0]
    name, view = next(iter(info['images'].items()))
    path = osp.join(ROOT, dataset.data_root, dataset.data_prefix.get(name, ''), view['img_path'])
    image = mmcv.imread(path)
    if image is None:
        raise FileNotFoundError(f'{path}: cannot read the first test image to get the views\' aspect ratio')
    return image.shape[1], image.shape[0]


def cells_per_degree(cfg, stride: int) -> float:
    """Feature cells a 1-degree camera rotation moves a projection near the image centre,
    from the focal length of the first test sample's first view."""
    import torch

    import plugin  # noqa: F401
    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules
    from plugin.models.utils import focal_lengths
    register_all_modules(init_default_scope=True)
    sample = DATASETS.build(cfg.test_dataloader.dataset)[0]
    lidar2img = torch.as_tensor(sample['data_samples'].metainfo['lidar2img'][0], dtype=torch.float64)
    return float(focal_lengths(lidar2img[None, None])) * math.tan(math.radians(1.0)) / stride


def run_model(name: str, seed: int, work_dir: str, args) -> dict:
    """{scenario: row} of `name` trained with `seed` (trained and tested unless done before)."""
    scenarios = ['clean', *(ROTATIONS[d] for d in args.rotations), *TRANSLATIONS.values(), CAMERAS_BLANK]
    cfg = study_config(MODELS[name], args.image_size, args.stride, args.zoom)
    return train_and_test(cfg, work_dir, seed, scenarios, name)


def report(results: dict, args, cells: float):
    """Markdown table, JSON and chart of NDS per model and noise level."""
    rotations = {d: ROTATIONS[d] for d in sorted(args.rotations) if all(ROTATIONS[d] in r for r in results.values())}
    levels = [('clean', 'clean')] + [(f'{d:g} deg', s) for d, s in rotations.items()] + \
        [(f'{c:g} cm', s) for c, s in TRANSLATIONS.items()]
    if all(CAMERAS_BLANK in r for r in results.values()):
        levels.append(('all cameras blank', CAMERAS_BLANK))
    else:
        print(f'not every run was tested with {CAMERAS_BLANK} (older runs): the column is left out')
    worst = rotations[max(rotations)]
    seeds = sorted({s for (_, s) in results})
    models = [m for m in args.models if any((m, s) in results for s in seeds)]
    size, stride = args.image_size, args.stride
    zoom = getattr(args, 'zoom', None)
    crop = f' (views enlarged {zoom:g}x more than the configs do, centre crop)' if zoom else ''
    lines = [f'NDS, mean +- std over seeds {seeds} (n per model in brackets); input {size[0]}x{size[1]}{crop}, '
             f'stride-{stride} image maps: 1 degree moves a projection near the image centre by {cells:.2f} '
             'feature cells.', '',
             '| model (n) | ' + ' | '.join(name for name, _ in levels) + f' | NDS at {max(rotations):g} deg / clean |',
             '| --- |' + ' --- |' * (len(levels) + 1)]
    summary = {}
    for m in models:
        runs = [results[(m, s)] for s in seeds if (m, s) in results]
        cols, stats = [], {}
        for name, scenario in levels:
            mean, std = mean_std([r[scenario]['NDS'] for r in runs])
            stats[scenario] = dict(mean=mean, std=std, n=len(runs))
            cols.append(f'{mean:.3f} +- {std:.3f}' if len(runs) > 1 else f'{mean:.3f}')
        kept = mean_std([r[worst]['NDS'] / max(r['clean']['NDS'], 1e-9) for r in runs])[0]
        summary[m] = stats
        lines.append(f'| {m} ({len(runs)}) | ' + ' | '.join(cols) + f' | {kept:.2f} |')
    table = '\n'.join(lines) + '\n'
    with open(osp.join(args.work_root, 'calibration_study.md'), 'w') as f:
        f.write(table)
    with open(osp.join(args.work_root, 'calibration_study.json'), 'w') as f:
        json.dump(dict(summary=summary, cells_per_degree=cells, image_size=list(args.image_size),
                       stride=args.stride, zoom=zoom, runs={f'{m}_seed{s}': r for (m, s), r in results.items()}), f, indent=1)
    chart(summary, osp.join(args.work_root, 'calibration_study.png'), cells, rotations)
    print(table)


def chart(summary: dict, path: str, cells: float, rotations: dict):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (rot, trans) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for model, stats in summary.items():
        for ax, table in ((rot, rotations), (trans, TRANSLATIONS)):
            xs = [0.0] + list(table)
            ys = [stats['clean']['mean']] + [stats[s]['mean'] for s in table.values()]
            err = [stats['clean']['std']] + [stats[s]['std'] for s in table.values()]
            err = [0.0 if math.isnan(e) else e for e in err]
            ax.errorbar(xs, ys, yerr=err, marker='o', capsize=3, label=f'{model} (n={stats["clean"]["n"]})')
    rot.set_xlabel(f'camera rotation error (deg; 1 deg = {cells:.2f} feature cells)')
    trans.set_xlabel('camera translation error (cm)')
    rot.set_ylabel('NDS (mean +- std over seeds)')
    rot.legend(fontsize=8)
    for ax in (rot, trans):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--image-size', nargs=2, type=int, metavar=('W', 'H'), help="default: the configs'")
    parser.add_argument('--stride', type=int, help="feature stride of the image maps: 4, 8 or 16 (default: the "
                        "configs')")
    parser.add_argument('--zoom', type=float, help='enlarge every view this many times more than the configs do '
                        'and crop its centre: more feature cells per degree at the same input size and cost')
    parser.add_argument('--rotations', nargs='+', type=float, default=list(ROTATIONS), choices=list(ROTATIONS),
                        help='camera rotation errors to test (degrees)')
    parser.add_argument('--work-root', default=osp.join(ROOT, 'work_dirs', 'calibration_study'))
    parser.add_argument('--report-only', action='store_true', help='tables and chart from finished runs only')
    args = parser.parse_args(argv)
    os.makedirs(args.work_root, exist_ok=True)
    results = collect_runs(args.models, args.seeds, args.work_root,
                           lambda name, seed, work_dir: run_model(name, seed, work_dir, args), args.report_only)
    cfg = study_config(MODELS[args.models[0]], args.image_size, args.stride, args.zoom)
    args.image_size = list(cfg.image_size)
    args.stride = args.stride or 4 * 2 ** min(cfg.model.img_backbone.out_indices)
    report(results, args, cells_per_degree(cfg, args.stride))


if __name__ == '__main__':
    main()
