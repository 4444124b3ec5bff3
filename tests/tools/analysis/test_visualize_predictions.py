"""tools/analysis/visualize_predictions.py draws a trained checkpoint's predictions: it loads
an mmengine checkpoint as tools/train.py writes it (with the message hub's objects)."""
import glob
import os.path as osp

import cv2

from tests.helpers.repo import run_tool
from tests.helpers.tiny_cmt import CONFIG, save_tiny_checkpoint, tiny_options


def test_draws_the_predictions_of_a_training_checkpoint(synthetic_root, tmp_path):
    from mmengine.logging import HistoryBuffer
    # what mmengine's CheckpointHook saves beside the weights: torch's default
    # weights_only loading refuses such objects
    ckpt = save_tiny_checkpoint(synthetic_root, str(tmp_path / 'epoch_1.pth'),
                                message_hub=dict(log_scalars={'train/loss': HistoryBuffer()}))
    out = tmp_path / 'vis'
    proc = run_tool('tools/analysis/visualize_predictions.py', CONFIG, ckpt, '--indices', '1', '--score-thr', '0.0',
                    '--out', str(out), '--cfg-options', *tiny_options(synthetic_root))
    pngs = glob.glob(osp.join(out, '*.png'))
    assert [osp.basename(p) for p in pngs] == ['pred_0001.png'] and 'wrote' in proc.stdout
    assert cv2.imread(pngs[0]).shape[2] == 3
