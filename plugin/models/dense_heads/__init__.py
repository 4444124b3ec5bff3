from .bev_heatmap_aux import BEVHeatmapAux
from .cmt_head import CMT_CODE_ORDER, CmtHead
from .image_centre_head import CentreTargets, ImageCentreHead
from .query_denoising import DNMeta, build_dn_queries
from .task_heads import GroupLayerNorm1d, LayerwiseTaskHead, SeparateTaskHead

__all__ = ['BEVHeatmapAux', 'CMT_CODE_ORDER', 'CmtHead', 'CentreTargets', 'ImageCentreHead', 'DNMeta', 'build_dn_queries', 'GroupLayerNorm1d',
           'LayerwiseTaskHead', 'SeparateTaskHead']
