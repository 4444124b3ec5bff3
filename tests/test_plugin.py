"""`import plugin` changes no global behaviour: the tools apply the workarounds."""


def test_importing_the_plugin_changes_no_global_behaviour():
    """`import plugin` leaves torch.cuda.set_device, numpy and mmengine's local checkpoint
    loader alone; the tools apply the workarounds (plugin.compat.apply)."""
    import subprocess
    import sys
    code = '''
import numpy, torch
from mmengine.runner.checkpoint import CheckpointLoader
before = (torch.cuda.set_device, torch.load, CheckpointLoader._schemes[''], hasattr(numpy, 'long'))
import plugin
after = (torch.cuda.set_device, torch.load, CheckpointLoader._schemes[''], hasattr(numpy, 'long'))
assert all(a is b for a, b in zip(before[:3], after[:3])) and before[3] == after[3], 'changed'
plugin.compat.apply()
assert CheckpointLoader._schemes[''] is not before[2] and hasattr(numpy, 'long')
print('ok')
'''
    res = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], capture_output=True, text=True)
    assert res.stdout.strip().endswith('ok'), res.stderr[-2000:]
