"""Missing data is a normal case: empty point clouds, blank cameras, queries that no
camera sees and padded images give finite predictions and finite losses."""
import copy
import functools
import os.path as osp

import pytest
import torch

import plugin  # noqa: F401
from tests.helpers.repo import REPO
from tests.helpers.tiny_cmt import tiny_cfg

SYNTHETIC = osp.join(REPO, 'configs/synthetic')
BASE = osp.join(SYNTHETIC, 'cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py')
AQR = osp.join(SYNTHETIC, 'cmt-aqr_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py')
NECKS = [osp.join(SYNTHETIC, f'cmt-{name}_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py')
         for name in ('futr', 'sparsebev', 'futr-sparsebev', 'triplane')]


def _with(pipeline, transforms):
    at = [step['type'] for step in pipeline].index('Pack3DDetInputs')
    return list(pipeline[:at]) + transforms + list(pipeline[at:])


_DATASETS = {}


def _items(cfg, split, per_sample):
    """One item per entry of `per_sample` (the failure transforms of that sample); the
    datasets are built once per pipeline (all synthetic configs share their pipelines)."""
    from mmdet3d.registry import DATASETS
    loader = cfg.train_dataloader if split == 'train' else cfg.test_dataloader
    items = []
    for i, transforms in enumerate(per_sample):
        ds = copy.deepcopy(loader.dataset)
        ds.pipeline = _with(ds.pipeline, transforms)
        key = repr(ds.to_dict() if hasattr(ds, 'to_dict') else ds)
        if key not in _DATASETS:
            _DATASETS[key] = DATASETS.build(ds)
        items.append(_DATASETS[key][i])
    return items


@functools.lru_cache(maxsize=None)
def _model(config, root):
    """The tiny variant of `config`, built once per module (the tests never step an optimizer)."""
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = tiny_cfg(root, config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model


def _assert_finite_predictions(model, batch):
    model.eval()
    with torch.no_grad():
        results = model.predict(batch['inputs'], batch['data_samples'])
    assert len(results) == len(batch['data_samples'])
    for result in results:
        pred = result.pred_instances_3d
        assert len(pred.scores_3d) > 0
        assert torch.isfinite(pred.bboxes_3d.tensor).all() and torch.isfinite(pred.scores_3d).all()


def _assert_finite_training(model, batch):
    model.train()
    losses = model.loss(batch['inputs'], batch['data_samples'])
    loss = sum(v for v in losses.values() if isinstance(v, torch.Tensor))
    assert torch.isfinite(loss), {k: float(v) for k, v in losses.items()}
    model.zero_grad()
    loss.backward()
    for name, param in model.named_parameters():
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), name


DROP = [dict(type='LiDARDrop')]
BLANK = [dict(type='CameraViewDrop', views='all')]
CASES = {
    'last_sample_no_points': ([], DROP),          # mmdet3d infers the batch size from the last voxel
    'no_points_at_all': (DROP, DROP),
    'all_cameras_blank': (BLANK, BLANK),
    'nothing_at_all': (DROP + BLANK, DROP + BLANK),
}


@pytest.mark.parametrize('config', [BASE, AQR], ids=['cmt', 'aqr'])
@pytest.mark.parametrize('case', list(CASES))
def test_failures_give_finite_predictions_and_losses(synthetic_root, config, case):
    from mmengine.dataset import pseudo_collate
    cfg, model = _model(config, synthetic_root)
    test = model.data_preprocessor(pseudo_collate(_items(cfg, 'test', CASES[case])), training=False)
    _assert_finite_predictions(model, test)
    if case != 'nothing_at_all':   # training never drops both (ModalityDropout)
        train = model.data_preprocessor(pseudo_collate(_items(cfg, 'train', CASES[case])), training=True)
        _assert_finite_training(model, train)


@pytest.mark.parametrize('config', NECKS, ids=['futr', 'sparsebev', 'futr-sparsebev', 'triplane'])
def test_fusion_variants_survive_missing_sensors(synthetic_root, config):
    from mmengine.dataset import pseudo_collate
    cfg, model = _model(config, synthetic_root)
    test = model.data_preprocessor(pseudo_collate(_items(cfg, 'test', ([], DROP + BLANK))), training=False)
    _assert_finite_predictions(model, test)
    train = model.data_preprocessor(pseudo_collate(_items(cfg, 'train', (DROP, BLANK))), training=True)
    _assert_finite_training(model, train)


@pytest.mark.parametrize('config', [BASE, AQR], ids=['cmt', 'aqr'])
def test_queries_seen_by_no_camera_and_padded_images(synthetic_root, config):
    """Every camera looks away (all points behind it), and 250x140 views are padded to
    256x160 by the data preprocessor (pad_size_divisor=32)."""
    from mmengine.dataset import pseudo_collate
    cfg, model = _model(config, synthetic_root)
    cfg = copy.deepcopy(cfg)          # the cached config stays as it is
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        for step in loader.dataset.pipeline:
            if step['type'] == 'MultiViewImageResizeCrop':
                step['final_size'] = (250, 140)
    for split, training in (('test', False), ('train', True)):
        batch = model.data_preprocessor(pseudo_collate(_items(cfg, split, ([], []))), training=training)
        assert batch['inputs']['imgs'].shape[-2:] == (160, 256)
        for sample in batch['data_samples']:
            lidar2img = sample.metainfo['lidar2img'].copy()
            lidar2img[:, 2] *= -1      # depth sign flipped: every point is behind its camera
            sample.set_metainfo(dict(lidar2img=lidar2img))
        if training:
            _assert_finite_training(model, batch)
        else:
            _assert_finite_predictions(model, batch)
