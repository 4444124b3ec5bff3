from .compute_lidar2img import ComputeLidar2Img, lidar_aug_matrix
from .lidar_random_flip_3d import LiDARRandomFlip3D
from .multiview_image_resize_crop import MultiViewImageResizeCrop
from .reduced_multiview_image_loading import LoadMultiViewImageFromFilesReduced, reduction_matrix

__all__ = ['ComputeLidar2Img', 'lidar_aug_matrix', 'LiDARRandomFlip3D', 'MultiViewImageResizeCrop',
           'LoadMultiViewImageFromFilesReduced', 'reduction_matrix']
