from .bev_heatmap_aux import BEVHeatmapAux
from .cmt_head import CmtHead, SeparateTaskHead
from .query_denoising import DNMeta, build_dn_queries

__all__ = ['BEVHeatmapAux', 'CmtHead', 'SeparateTaskHead', 'DNMeta', 'build_dn_queries']
