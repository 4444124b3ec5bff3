from .bev_sampling import sample_bev
from .position_embedding import (BEVPositionEmbedding, CameraRayEmbedding, depth_bins,
                                 sine_embedding)
from .strict_pretrained import StrictPretrained
from .triplane_sampling import PLANE_AXES, sample_triplane
from .projection import (bev_cells, denormalize_points, first_view_cells, inside_image, lift_pixels, normalize_points, project_points,
                         stack_lidar2img, visible_mask)

__all__ = ['StrictPretrained', 'sample_bev', 'BEVPositionEmbedding', 'CameraRayEmbedding', 'depth_bins', 'sine_embedding',
           'bev_cells', 'first_view_cells', 'denormalize_points', 'inside_image', 'lift_pixels', 'normalize_points', 'project_points',
           'stack_lidar2img', 'visible_mask', 'PLANE_AXES', 'sample_triplane']
