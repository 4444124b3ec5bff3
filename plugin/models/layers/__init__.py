"""Building blocks: attention with an attention-bias hook, the PETR decoder, the triplane
generator, the camera-token block of the FuTr neck. AQR's modules live in `plugin.models.aqr`
and are re-exported here; its window bias and attentions are the torch-only package
`aqr_attention`."""
from .biased_attention import BiasedMultiheadAttention, combine_masks, sdpa_with_mask
from .camera_token_block import CameraTokenBlock
from .petr_transformer import CmtTransformer, PETRTransformerDecoder, PETRTransformerDecoderLayer
from .sdpa_attention import SDPAttention
from .triplane_generator import TriplaneGenerator, TriplaneLayer
from .triplane_upsampler import TriplaneUpsampler
from ..aqr import AQRWeightGenerator, AQRWeights, AttentionBiasGenerator  # noqa: E402

__all__ = ['BiasedMultiheadAttention', 'combine_masks', 'sdpa_with_mask', 'CmtTransformer',
           'PETRTransformerDecoder', 'PETRTransformerDecoderLayer', 'AQRWeightGenerator',
           'AQRWeights', 'AttentionBiasGenerator', 'SDPAttention', 'TriplaneGenerator', 'TriplaneLayer',
           'TriplaneUpsampler', 'CameraTokenBlock']
