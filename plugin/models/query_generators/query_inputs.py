"""What a query generator reads (`QueryInputs`) and what it returns (`QuerySet`).

`CmtHead` decodes two kinds of queries: CMT's learned reference points, the same for every
sample, and those of an optional generator, placed per sample where a dense head sees
objects (TransFusion's BEV heatmap peaks, camera-centre peaks lifted along their rays).
The head keeps the memory, the embeddings, the decoder and the decoding; a generator
only says where its queries start and what content they start from.
"""
from typing import Dict, List, NamedTuple, Optional

from torch import Tensor

from ..utils.camera_geometry import CameraGeometry


class QueryInputs(NamedTuple):
    """The batch as a generator sees it; a field is None when the model or the batch lacks it."""
    batch_size: int
    bev_heatmap: Optional[Tensor] = None        # [B, C, H, W] logits of the head's auxiliary BEV heatmap
    img_feats: Optional[Tensor] = None          # [B, V, C, h, w] camera feature maps (the neck's)
    img_centre: Optional[Dict[str, Tensor]] = None   # `ImageCentreHead` outputs (+ 'targets' in training)
    geometry: Optional[CameraGeometry] = None
    gt_boxes: Optional[List[Tensor]] = None     # training only


class QuerySet(NamedTuple):
    """Queries of one generator: reference points [B, N, 3] normalised to the point-cloud
    range, content [B, N, C] added to the head's own query content (None: nothing) and,
    for queries at a dense head's peaks, the peak's class [B, N] (-1: none) and heatmap
    score [B, N] in [0, 1] (the head may rescore its detections with them, as TransFusion)."""
    ref: Tensor
    content: Optional[Tensor] = None
    labels: Optional[Tensor] = None
    scores: Optional[Tensor] = None
