"""Building blocks: attention with an attention-bias hook, the PETR decoder, the triplane
generator, the camera-token block of the FuTr neck. AQR's window bias and attentions live in `plugin.models.aqr` and are
re-exported here."""
from .biased_attention import BiasedMultiheadAttention, combine_masks, sdpa_with_mask
from .camera_token_block import CameraTokenBlock
from .petr_transformer import CmtTransformer, PETRTransformerDecoder, PETRTransformerDecoderLayer
from .sdpa_attention import SDPAttention
from .triplane_generator import TriplaneGenerator, TriplaneLayer
from .triplane_upsampler import TriplaneUpsampler
from ..aqr import (AQRWeightGenerator, AQRWeights, AttentionBiasGenerator, KeyLayout, LocalWindowBias,  # noqa: E402
                   attention_backend, local_bias_attention, local_window_attention)

__all__ = ['BiasedMultiheadAttention', 'combine_masks', 'sdpa_with_mask', 'CmtTransformer',
           'PETRTransformerDecoder', 'PETRTransformerDecoderLayer', 'LocalWindowBias', 'KeyLayout',
           'local_bias_attention', 'local_window_attention', 'attention_backend', 'AQRWeightGenerator',
           'AQRWeights', 'AttentionBiasGenerator', 'SDPAttention', 'TriplaneGenerator', 'TriplaneLayer',
           'TriplaneUpsampler', 'CameraTokenBlock']
