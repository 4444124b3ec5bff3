"""tools/mmdet3d_tool.py: a distributed run tears its process group down before exit."""
import torch.distributed as dist

from tests.helpers.repo import load_tool


def test_close_process_group_destroys_the_default_group(tmp_path):
    tool = load_tool('tools/mmdet3d_tool.py')
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    assert dist.is_initialized()
    tool.close_process_group()
    assert not dist.is_initialized()
    tool.close_process_group()   # nothing to close: a no-op, not an error
    assert not dist.is_initialized()
