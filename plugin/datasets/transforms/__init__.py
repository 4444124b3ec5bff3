from .camera_failures import CalibrationNoise, CameraViewDrop, ImageOcclusion
from .compute_lidar2img import ComputeLidar2Img, lidar_aug_matrix
from .lidar_failures import LiDARBeamReduction, LiDARDrop, LiDARFieldOfView
from .lidar_random_flip_3d import LiDARRandomFlip3D
from .modality_dropout import ModalityDropout
from .multiview_image_resize_crop import MultiViewImageResizeCrop
from .reduced_multiview_image_loading import LoadMultiViewImageFromFilesReduced, reduction_matrix

__all__ = ['CalibrationNoise', 'CameraViewDrop', 'ImageOcclusion', 'ComputeLidar2Img', 'lidar_aug_matrix',
           'LiDARBeamReduction', 'LiDARDrop', 'LiDARFieldOfView', 'LiDARRandomFlip3D', 'ModalityDropout',
           'MultiViewImageResizeCrop', 'LoadMultiViewImageFromFilesReduced', 'reduction_matrix']
