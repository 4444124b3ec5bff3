from .box3d_coding import decode_boxes, encode_boxes
from .hungarian_assigner_3d import BBox3DL1Cost, HungarianAssigner3D
from .nms_free_coder import NMSFreeCoder

__all__ = ['decode_boxes', 'encode_boxes', 'BBox3DL1Cost', 'HungarianAssigner3D', 'NMSFreeCoder']
