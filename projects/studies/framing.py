"""Camera framing of a study's runs: another input size, another feature stride of the
image maps, or a zoom (every view enlarged more than the config does and its centre
cropped: more feature cells per degree at the same input size and cost, for a narrower
field of view), applied to any config; and how many feature cells a 1-degree camera
rotation moves a projection, the unit a calibration error is felt in."""
import math
import os.path as osp
from typing import Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

RESNET_CHANNELS = {18: [64, 128, 256, 512], 34: [64, 128, 256, 512]}


def framed(cfg, image_size=None, stride: Optional[int] = None, zoom: Optional[float] = None,
           view_size: Optional[tuple] = None):
    """The mmengine Config `cfg` (changed in place), with every image resize producing
    `image_size` (width, height), the image branch reading ResNet's stride-`stride` level as
    its finest map, and, with `zoom`, every view enlarged `zoom` times more than the config
    does and cropped around its centre row (a narrower field of view at the same input size:
    more feature cells per degree at the same cost, the JPEGs decoded at a resolution the
    zoom does not have to upsample); `view_size` is the (width, height) of the camera images
    (default: the first test image's)."""
    if image_size is None and stride is None and zoom is None:
        return cfg
    from plugin.datasets.dataset_config import innermost_dataset_cfg
    config = cfg.filename
    if stride is None:
        stride = feature_stride(cfg)
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


def feature_stride(cfg) -> int:
    """Stride of the finest image feature map the config's ResNet hands on."""
    return 4 * 2 ** min(cfg.model.img_backbone.out_indices)


def cells_per_degree(cfg) -> float:
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
    return float(focal_lengths(lidar2img[None, None])) * math.tan(math.radians(1.0)) / feature_stride(cfg)
