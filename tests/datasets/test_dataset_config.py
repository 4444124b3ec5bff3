"""`innermost_dataset_cfg` finds the dataset config that holds a key through wrappers."""
from mmengine.config import ConfigDict

from plugin.datasets.dataset_config import innermost_dataset_cfg


def test_through_wrappers_to_the_config_holding_the_key():
    inner = ConfigDict(type='NuScenesDataset', data_root='data/x/', pipeline=[dict(type='Pack3DDetInputs')])
    wrapped = ConfigDict(type='CBGSDataset', dataset=ConfigDict(type='RepeatDataset', times=2, dataset=inner))
    assert innermost_dataset_cfg(wrapped, 'pipeline') is inner
    assert innermost_dataset_cfg(wrapped, 'times') is wrapped.dataset       # the first that holds the key
    assert innermost_dataset_cfg(inner, 'data_root') is inner               # no wrapper
    innermost_dataset_cfg(wrapped)['pipeline'].append(dict(type='X'))       # the config itself, not a copy
    assert inner.pipeline[-1] == dict(type='X')
    assert innermost_dataset_cfg(wrapped, 'missing') is inner               # no config holds it: the innermost
