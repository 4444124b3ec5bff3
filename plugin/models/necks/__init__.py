from .cpfpn import CPFPN
from .futr_fusion_neck import FuTrFusionNeck
from .sparsebev_fusion_neck import SparseBEVFusionNeck
from .triplane_neck import TriplaneNeck

__all__ = ['CPFPN', 'FuTrFusionNeck', 'SparseBEVFusionNeck', 'TriplaneNeck']
