"""The dataset config inside mmengine / mmdet3d dataset wrappers.

A loader's `dataset` may be a wrapper (`CBGSDataset`, `RepeatDataset`, `ClassBalancedDataset`)
whose own `dataset` holds the pipeline and the files; tools that edit a pipeline or read
the data root reach that inner config through `innermost_dataset_cfg`.
"""


def innermost_dataset_cfg(dataset_cfg: dict, key: str = 'pipeline') -> dict:
    """The outermost config in the chain `dataset_cfg`, `.dataset`, `.dataset.dataset`, ...
    that holds `key` (the innermost one when none does); the config itself, not a copy."""
    while key not in dataset_cfg and 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg
