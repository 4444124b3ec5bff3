"""The CMT detector overfits a fixed batch of generated data, and applies a list of fusion
necks in order."""
import copy
import os.path as osp

import torch

from tests.helpers.repo import REPO
from tests.helpers.tiny_cmt import fit_fixed_batch, tiny_cfg

STACKED = osp.join(REPO, 'configs/synthetic/cmt-futr-sparsebev_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py')


def test_tiny_model_overfits_a_fixed_batch(synthetic_root):
    history = fit_fixed_batch(tiny_cfg(synthetic_root), 60)
    assert min(history[-5:]) < 0.6 * history[0], history


def test_a_list_of_fusion_necks_is_applied_in_order(synthetic_root):
    from mmengine.dataset import pseudo_collate

    import plugin  # noqa: F401
    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = tiny_cfg(synthetic_root, STACKED)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    sparse, futr = model.fusion_neck
    assert [type(n).__name__ for n in model.fusion_neck] == ['SparseBEVFusionNeck', 'FuTrFusionNeck']
    with torch.no_grad():                   # FuTr's FiLM starts at zero: make it act
        futr.film.weight.normal_(std=0.05)
    batch = model.data_preprocessor(pseudo_collate([DATASETS.build(cfg.train_dataloader.dataset)[0]]),
                                    training=True)
    metas = [s.metainfo for s in batch['data_samples']]
    model.eval()
    # copies: mmdet3d's PillarFeatureNet (legacy=True) rewrites the voxels' xyz in place
    with torch.no_grad():
        img_feats, bev, _, geometry = model.extract_feat(copy.deepcopy(batch['inputs']), metas)
        plain = model.extract_pts_feat(copy.deepcopy(batch['inputs']['voxels']), batch_input_metas=metas)[0]
        one_after_another = futr(sparse(plain, img_feats, geometry), img_feats, geometry)
    torch.testing.assert_close(bev, one_after_another, atol=0, rtol=0)
    assert not torch.allclose(bev, sparse(plain, img_feats, geometry))
    model.train()
    losses = model.loss(batch['inputs'], batch['data_samples'])
    sum(v for v in losses.values() if isinstance(v, torch.Tensor)).backward()
    for neck in (sparse, futr):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in neck.parameters())
    assert all(k.startswith(('fusion_neck.0.', 'fusion_neck.1.')) for k in model.state_dict()
               if k.startswith('fusion_neck'))
