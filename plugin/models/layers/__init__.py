"""Building blocks: attention with an attention-bias hook, the PETR decoder."""
from .biased_attention import BiasedMultiheadAttention, combine_masks, sdpa_with_mask
from .petr_transformer import CmtTransformer, PETRTransformerDecoder, PETRTransformerDecoderLayer

__all__ = ['BiasedMultiheadAttention', 'combine_masks', 'sdpa_with_mask', 'CmtTransformer',
           'PETRTransformerDecoder', 'PETRTransformerDecoderLayer']
