"""Query generators of `CmtHead`: sample-dependent queries (reference points, content)
placed where a dense head sees objects, decoded next to CMT's learned reference points."""
from .bev_heatmap_queries import BEVHeatmapQueries
from .camera_peak_queries import CameraPeakQueries
from .composite_queries import CompositeQueries
from .query_inputs import QueryInputs, QuerySet

__all__ = ['QueryInputs', 'QuerySet', 'BEVHeatmapQueries', 'CameraPeakQueries', 'CompositeQueries']
