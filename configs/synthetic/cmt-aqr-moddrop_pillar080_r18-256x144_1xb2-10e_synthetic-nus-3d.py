# The synthetic AQR config trained with MoME-style modality dropout: each training
# sample loses its LiDAR with probability 0.15, else all its cameras with probability 0.15
# (never both), so the model learns to detect from one sensor. Only the training pipeline
# changes; tools/robustness_eval.py shows what it buys under sensor failures.
_base_ = ['./cmt-aqr_pillar080_r18-256x144_1xb2-10e_synthetic-nus-3d.py']

_pack = [step['type'] for step in _base_.train_pipeline].index('Pack3DDetInputs')
train_pipeline = _base_.train_pipeline[:_pack] + [
    dict(type='ModalityDropout', lidar_prob=0.15, camera_prob=0.15)] + _base_.train_pipeline[_pack:]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
