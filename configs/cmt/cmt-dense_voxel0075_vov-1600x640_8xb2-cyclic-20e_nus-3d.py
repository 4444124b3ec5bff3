# The VoV CMT recipe with dense supervision of its camera maps (`ImageCentreHead`, after
# StreamPETR's 2D focal head and Far3D's 2D branch): per-class heatmaps of the projected 3D
# box centres, their sub-cell offsets and log depths, as training losses only; the
# detector's outputs stay CMT's.
_base_ = ['./cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py']

model = dict(img_centre_head=dict(type='ImageCentreHead', in_channels=_base_.embed_dims,
                                  num_classes=len(_base_.class_names)))
