"""Deformable convolution with kernel 2 and stride 2, in pure PyTorch.

With ``kernel_size == stride == 2`` (and no padding or dilation) the four kernel points of every output
position sample four disjoint pixels of a ``(2 * Ho) x (2 * Wo)`` grid: kernel point ``(i, j)`` of output
``(ho, wo)`` starts at pixel ``(2 * ho + i, 2 * wo + j)``. A deformable convolution is therefore one
bilinear ``grid_sample`` of the input over that full-resolution grid, moved by the offsets, followed by
an ordinary 2x2 stride-2 convolution. Bilinear sampling with zero padding is exactly the sampling rule of
``mmcv.ops.deform_conv2d`` / ``torchvision.ops.deform_conv2d`` (neighbours outside the image count as
zero), and autograd gives the gradients for input, offsets and weights.
"""
from typing import Optional

import torch
import torch.nn.functional as F


def deform_sample_k2s2(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Sample the four kernel points of a 2x2 stride-2 deformable conv.

    Args:
        x (Tensor): Input of shape (B, C, H, W).
        offset (Tensor): Offsets of shape (B, 8, Ho, Wo), in the mmcv/torchvision layout: channels
            ``2 * (2 * i + j)`` and ``2 * (2 * i + j) + 1`` hold (dy, dx) of kernel point (i, j).
            ``Ho``/``Wo`` may be ``ceil(H / 2)``/``ceil(W / 2)``: samples below or right of the image read
            zeros, as if the input had been zero-padded.

    Returns:
        Tensor: Samples of shape (B, C, 2 * Ho, 2 * Wo); pixel (2 * ho + i, 2 * wo + j) holds kernel
        point (i, j) of output (ho, wo).
    """
    if offset.dim() != 4 or offset.shape[1] != 8:
        raise ValueError(f'offset must have shape (B, 8, Ho, Wo) for a 2x2 kernel with one deformable '
                         f'group, got {tuple(offset.shape)}')
    B, _, H, W = x.shape
    Ho, Wo = offset.shape[-2:]
    # (B, i, j, yx, Ho, Wo) -> (B, Ho, i, Wo, j, yx) -> (B, 2Ho, 2Wo, yx)
    off = offset.view(B, 2, 2, 2, Ho, Wo).permute(0, 4, 1, 5, 2, 3).reshape(B, 2 * Ho, 2 * Wo, 2)
    # grid_sample with align_corners=False maps pixel p to the normalised coordinate (2p + 1) / size - 1
    ys = torch.arange(2 * Ho, device=x.device, dtype=off.dtype).mul_(2 / H).add_(1 / H - 1)
    xs = torch.arange(2 * Wo, device=x.device, dtype=off.dtype).mul_(2 / W).add_(1 / W - 1)
    scale = off.new_tensor([2 / W, 2 / H])
    base = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)
    grid = torch.addcmul(base, off.flip(-1), scale)  # (dy, dx) -> normalised (x, y)
    return F.grid_sample(x, grid.to(x.dtype), mode='bilinear', padding_mode='zeros', align_corners=False)


def deform_conv2d_k2s2(x: torch.Tensor,
                       offset: torch.Tensor,
                       weight: torch.Tensor,
                       bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``mmcv.ops.deform_conv2d(x, offset, weight, stride=2, padding=0) + bias`` for a 2x2 kernel.

    Args:
        x (Tensor): Input of shape (B, Cin, H, W).
        offset (Tensor): Offsets of shape (B, 8, Ho, Wo), see :func:`deform_sample_k2s2`.
        weight (Tensor): Kernel of shape (Cout, Cin, 2, 2).
        bias (Tensor, optional): Bias of shape (Cout,).

    Returns:
        Tensor: Output of shape (B, Cout, Ho, Wo).
    """
    if weight.shape[-2:] != (2, 2):
        raise ValueError(f'deform_conv2d_k2s2 needs a 2x2 kernel, got {tuple(weight.shape[-2:])}')
    return F.conv2d(deform_sample_k2s2(x, offset), weight, bias, stride=2)
