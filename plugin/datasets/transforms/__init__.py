from .camera_failures import CalibrationNoise, CameraViewDrop, ImageOcclusion
from .compute_lidar2img import ComputeLidar2Img, lidar2img_matrices, lidar_aug_matrix
from .lidar_failures import LiDARBeamReduction, LiDARDrop, LiDARFieldOfView
from .lidar_random_flip_3d import LiDARRandomFlip3D
from .modality_dropout import ModalityDropout
from .multiview_grid_mask import MultiViewGridMask
from .multiview_image_resize_crop import MultiViewImageResizeCrop
from .object_sample_with_images import ObjectSampleWithImages, project_boxes
from .recording_database_sampler import RecordingDataBaseSampler
from .reduced_multiview_image_loading import LoadMultiViewImageFromFilesReduced, reduction_matrix

__all__ = ['CalibrationNoise', 'CameraViewDrop', 'ImageOcclusion', 'ComputeLidar2Img', 'lidar2img_matrices',
           'lidar_aug_matrix', 'LiDARBeamReduction', 'LiDARDrop', 'LiDARFieldOfView', 'LiDARRandomFlip3D',
           'ModalityDropout', 'MultiViewGridMask', 'MultiViewImageResizeCrop', 'ObjectSampleWithImages',
           'project_boxes', 'RecordingDataBaseSampler', 'LoadMultiViewImageFromFilesReduced', 'reduction_matrix']
