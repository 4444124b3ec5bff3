from .compute_lidar2img import ComputeLidar2Img

__all__ = ['ComputeLidar2Img']
