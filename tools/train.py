"""Train a detector: mmdet3d's tools/train.py with this project loaded (see mmdet3d_tool.py).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
"""
from mmdet3d_tool import run

if __name__ == '__main__':
    run('train.py')
