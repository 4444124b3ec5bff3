from .bev_sampling import sample_bev
from .camera_geometry import CameraGeometry
from .grids import bev_cell_centres, bev_cells, cell_centres, first_view_cells, local_maxima_topk
from .image_sampling import sample_image_features
from .position_embedding import (BEVPositionEmbedding, CameraRayEmbedding, depth_bins,
                                 sine_embedding)
from .projection import (camera_poses, denormalize_points, focal_lengths, inside_image, lift_pixels, normalize_points,
                         pixel_rays, project_points, visible_mask)
from .strict_pretrained import StrictPretrained
from .triplane_sampling import PLANE_AXES, sample_triplane

__all__ = ['StrictPretrained', 'sample_bev', 'BEVPositionEmbedding', 'CameraRayEmbedding', 'depth_bins', 'sine_embedding',
           'CameraGeometry', 'bev_cell_centres', 'bev_cells', 'first_view_cells', 'local_maxima_topk', 'cell_centres',
           'sample_image_features', 'camera_poses', 'focal_lengths', 'denormalize_points', 'inside_image', 'lift_pixels',
           'normalize_points', 'pixel_rays', 'project_points', 'visible_mask', 'PLANE_AXES', 'sample_triplane']
