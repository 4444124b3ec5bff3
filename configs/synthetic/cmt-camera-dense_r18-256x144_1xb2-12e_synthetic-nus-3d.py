# The camera-only CMT with dense supervision of its camera maps (`ImageCentreHead`:
# projected box-centre heatmaps, sub-cell offsets, log depths), the image-side counterpart
# of the BEV heatmap loss that made the LiDAR side learn on this schedule.
_base_ = ['./cmt-camera_r18-256x144_1xb2-12e_synthetic-nus-3d.py']

model = dict(img_centre_head=dict(type='ImageCentreHead', in_channels=_base_.embed_dims,
                                  num_classes=len(_base_.class_names)))
