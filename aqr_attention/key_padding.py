"""The key-padding mask of AQR's window attentions: bool [B, K], True = padding.

Both attentions serve decoder cross-attentions whose only mask is the memory's key padding
(image padding of the camera keys), so that is the one mask they take. Inside, every route
reads it as an additive [B, 1, 1, K] tensor (0 or -inf per key), built here once per call.
"""
from typing import Optional

import torch
from torch import Tensor


def check_key_padding(key_padding_mask: Optional[Tensor], batch: int, num_keys: int) -> Optional[Tensor]:
    """The mask itself when it is bool [batch, num_keys] (or None); a ValueError otherwise."""
    if key_padding_mask is not None and (key_padding_mask.dtype != torch.bool
                                         or tuple(key_padding_mask.shape) != (batch, num_keys)):
        raise ValueError(f'key_padding_mask must be bool [B, K] = [{batch}, {num_keys}] (True = padding), got '
                         f'{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}')
    return key_padding_mask


def additive_key_padding(key_padding_mask: Optional[Tensor], batch: int, num_keys: int,
                         dtype: torch.dtype) -> Optional[Tensor]:
    """bool [B, K] (True = padding) -> additive [B, 1, 1, K] of `dtype`; None stays None."""
    if check_key_padding(key_padding_mask, batch, num_keys) is None:
        return None
    zeros = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
    return zeros.masked_fill(key_padding_mask.detach(), float('-inf'))[:, None, None]
