"""The decoder memory's key order (`KeyLayout`) and AQR's addressing of it (`aqr_attention.KeyGrid`)."""
import ast
import os
import os.path as osp

import pytest
import torch

from aqr_attention import KeyGrid
from plugin.models.layers.key_layout import KeyLayout
from tests.helpers.repo import REPO


@pytest.mark.parametrize('bev_shape, cam_shape', [((4, 5), (3, 2, 6)), ((4, 5), None), (None, (3, 2, 6))])
def test_aqr_addresses_each_key_where_the_decoder_put_it(bev_shape, cam_shape):
    """Features whose channels hold their own grid coordinates, flattened by the decoder's
    layout: the key KeyGrid computes for each cell holds that cell."""
    layout = KeyLayout.of(bev_shape, cam_shape)
    grid = KeyGrid.of(*layout)
    bev = img = None
    if bev_shape is not None:
        h, w = bev_shape
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
        bev = torch.stack([torch.zeros_like(rows) - 1, rows, cols]).float()[None]          # [1, 3, H, W]
    if cam_shape is not None:
        v, h, w = cam_shape
        views, rows, cols = torch.meshgrid(torch.arange(v), torch.arange(h), torch.arange(w), indexing='ij')
        img = torch.stack([views, rows, cols], 1).float()[None]                             # [1, V, 3, h, w]
    keys = layout.flatten(bev, img)[0].long()                                              # [K, 3]
    assert grid.num_keys == layout.num_keys == keys.shape[0] and grid.num_bev_keys == layout.num_bev_keys
    for k, (view, row, col) in enumerate(keys.tolist()):
        if view < 0:
            assert int(grid.bev_key(torch.tensor(row), torch.tensor(col))) == k
        else:
            assert int(grid.cam_key(torch.tensor(view), torch.tensor(row), torch.tensor(col))) == k


BASELINE = ['plugin/models/layers', 'plugin/models/dense_heads', 'plugin/models/detectors', 'plugin/models/necks',
            'plugin/models/query_generators', 'plugin/models/utils', 'plugin/models/task_modules']


def test_the_baseline_imports_nothing_from_aqr():
    """CMT's decoder, head, detector and necks do not depend on the AQR extension: they
    build AQR's modules through the registry only when a config asks for them."""
    offenders = []
    for folder in BASELINE:
        for name in os.listdir(osp.join(REPO, folder)):
            if not name.endswith('.py'):
                continue
            path = osp.join(REPO, folder, name)
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom):
                    module = ('.' * node.level) + (node.module or '')
                elif isinstance(node, ast.Import):
                    module = ' '.join(a.name for a in node.names)
                else:
                    continue
                if 'aqr_attention' in module or module.lstrip('.').split('.')[0] == 'aqr':
                    offenders.append(f'{folder}/{name}: {module}')
    assert not offenders, offenders
