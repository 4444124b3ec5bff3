"""Building blocks: attention with an attention-bias hook, the PETR decoder, the triplane
generator, the camera-token block of the FuTr neck. AQR's modules live in `plugin.models.aqr`,
its window bias and attentions in the torch-only package `aqr_attention`."""
from .biased_attention import BiasedMultiheadAttention, combine_masks, sdpa_with_mask
from .camera_token_block import CameraTokenBlock
from .petr_transformer import CmtTransformer, PETRTransformerDecoder, PETRTransformerDecoderLayer
from .triplane_generator import TriplaneGenerator, TriplaneLayer
from .triplane_upsampler import TriplaneUpsampler

__all__ = ['BiasedMultiheadAttention', 'combine_masks', 'sdpa_with_mask', 'CmtTransformer',
           'PETRTransformerDecoder', 'PETRTransformerDecoderLayer', 'TriplaneGenerator', 'TriplaneLayer',
           'TriplaneUpsampler', 'CameraTokenBlock']
