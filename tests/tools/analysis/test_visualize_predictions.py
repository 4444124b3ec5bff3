"""tools/analysis/visualize_predictions.py draws a trained checkpoint's predictions: it loads
an mmengine checkpoint as tools/train.py writes it (with the message hub's objects)."""
import glob
import os.path as osp

import cv2
import torch

from tests.helpers.repo import run_tool
from tests.helpers.tiny_cmt import CONFIG, tiny_cfg, tiny_options


def test_draws_the_predictions_of_a_training_checkpoint(synthetic_root, tmp_path):
    from mmengine.logging import HistoryBuffer

    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg(synthetic_root).model)
    model.init_weights()
    ckpt = str(tmp_path / 'epoch_1.pth')
    # what mmengine's CheckpointHook saves beside the weights: torch's default
    # weights_only loading refuses such objects
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict(),
                    message_hub=dict(log_scalars={'train/loss': HistoryBuffer()})), ckpt)
    out = tmp_path / 'vis'
    proc = run_tool('tools/analysis/visualize_predictions.py', CONFIG, ckpt, '--indices', '1', '--score-thr', '0.0',
                    '--out', str(out), '--cfg-options', *tiny_options(synthetic_root))
    pngs = glob.glob(osp.join(out, '*.png'))
    assert [osp.basename(p) for p in pngs] == ['pred_0001.png'] and 'wrote' in proc.stdout
    assert cv2.imread(pngs[0]).shape[2] == 3
