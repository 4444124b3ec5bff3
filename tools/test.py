"""Test a checkpoint: mmdet3d's tools/test.py with this project loaded (see mmdet3d_tool.py).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
"""
from mmdet3d_tool import run

if __name__ == '__main__':
    run('test.py')
