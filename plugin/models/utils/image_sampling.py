"""Sampling camera feature maps at pixels of the padded input image."""
from typing import Sequence

import torch
from torch import Tensor


def sample_image_features(img_feats: Tensor, uv: Tensor, pad_shape: Sequence[int]) -> Tensor:
    """Bilinear samples of each view's feature map at pixels of the padded input image.

    Args:
        img_feats: [B, V, C, h, w], the stride-s maps of the padded images.
        uv: [B, V, N, 2] pixel coordinates (u = column, v = row) in the padded image of
            `pad_shape` (height, width).
    Returns:
        [B, V, C, N] (channels first: grid_sample's own layout, no copy). Points in the outer half cell of a map take its border values (the
        image goes on there); points outside the image are to be masked by the caller
        (`visible_mask`).
    """
    b, v, c, h, w = img_feats.shape
    # align_corners=False: pixel u of a width-W image lies at 2u/W - 1 in grid units
    grid = torch.stack([uv[..., 0] / pad_shape[1], uv[..., 1] / pad_shape[0]], -1) * 2 - 1
    out = torch.nn.functional.grid_sample(img_feats.flatten(0, 1), grid.flatten(0, 1)[:, :, None].to(img_feats.dtype),
                                          mode='bilinear', padding_mode='border', align_corners=False)
    return out[..., 0].view(b, v, c, -1)
