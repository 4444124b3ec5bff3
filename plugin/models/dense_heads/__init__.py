from .bev_heatmap_aux import BEVHeatmapAux
from .cmt_head import CMT_CODE_ORDER, CmtHead
from .query_denoising import DNMeta, build_dn_queries
from .task_heads import GroupLayerNorm1d, LayerwiseTaskHead, SeparateTaskHead

__all__ = ['BEVHeatmapAux', 'CMT_CODE_ORDER', 'CmtHead', 'DNMeta', 'build_dn_queries', 'GroupLayerNorm1d',
           'LayerwiseTaskHead', 'SeparateTaskHead']
