"""Building blocks: attention with an attention-bias hook, the PETR decoder, AQR's exact
local-window bias attention and its LAM window attention, the triplane generator."""
from .aqr_weight_generator import AQRWeightGenerator, AQRWeights
from .attention_bias_generator import AttentionBiasGenerator
from .biased_attention import BiasedMultiheadAttention, combine_masks, sdpa_with_mask
from .local_bias_attention import local_bias_attention
from .local_window_attention import local_window_attention
from .local_window_bias import LocalWindowBias
from .sdpa_attention import SDPAttention
from .triplane_generator import TriplaneGenerator, TriplaneLayer
from .triplane_upsampler import TriplaneUpsampler
from .petr_transformer import CmtTransformer, PETRTransformerDecoder, PETRTransformerDecoderLayer

__all__ = ['BiasedMultiheadAttention', 'combine_masks', 'sdpa_with_mask', 'CmtTransformer',
           'PETRTransformerDecoder', 'PETRTransformerDecoderLayer', 'LocalWindowBias',
           'local_bias_attention', 'local_window_attention', 'AQRWeightGenerator', 'AQRWeights', 'AttentionBiasGenerator',
           'SDPAttention', 'TriplaneGenerator', 'TriplaneLayer', 'TriplaneUpsampler']
