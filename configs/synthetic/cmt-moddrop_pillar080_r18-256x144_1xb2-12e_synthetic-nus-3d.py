# The demo config trained with the modality masking of the official CMT recipe that the
# demo leaves out (CMT's ModalMask3D, as the nuScenes configs' `modal_mask`: no LiDAR in 25 %
# of the training samples, all cameras blank in another 25 %, never both), so that one sensor alone
# still detects. Only the training pipeline changes; tools/robustness_eval.py measures what
# it buys under sensor failures, and cmt-aqr-moddrop adds AQR to this config.
_base_ = ['./cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py']

_pack = [step['type'] for step in _base_.train_pipeline].index('Pack3DDetInputs')
train_pipeline = (_base_.train_pipeline[:_pack] + [dict(type='ModalityDropout', lidar_prob=0.25, camera_prob=0.25)]
                  + _base_.train_pipeline[_pack:])
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
