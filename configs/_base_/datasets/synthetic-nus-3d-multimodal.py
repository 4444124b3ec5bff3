# The generated nuScenes-format data set (tools/create_synthetic_nuscenes.py): same
# pipelines as real nuScenes, another root and the v1.0-mini split.
_base_ = ['./nus-3d-multimodal.py']

data_root = 'data/synthetic_nuscenes/'
metainfo = dict(version='v1.0-mini')
_dataset = dict(data_root=data_root, metainfo=metainfo)

train_dataloader = dict(num_workers=2, persistent_workers=False, dataset=_dataset)
val_dataloader = dict(num_workers=1, persistent_workers=False, dataset=_dataset)
test_dataloader = val_dataloader
val_evaluator = dict(data_root=data_root, ann_file=data_root + 'nuscenes_infos_val.pkl')
test_evaluator = val_evaluator
