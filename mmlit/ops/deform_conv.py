"""Deformable convolution with kernel 2 and stride 2, in pure PyTorch.

With ``kernel_size == stride == 2`` (and no padding or dilation) the four kernel points of every output
position sample four disjoint pixels of a ``(2 * Ho) x (2 * Wo)`` grid: kernel point ``(i, j)`` of output
``(ho, wo)`` starts at pixel ``(2 * ho + i, 2 * wo + j)``. A deformable convolution is therefore one
bilinear sampling of the input over that full-resolution grid, moved by the offsets, followed by an
ordinary 2x2 stride-2 convolution.

The sampling follows the rule of the deformable convolution kernels of mmcv, torchvision and the
official LIT code, gradients included: a sample at ``(y, x)`` interpolates its neighbours ``floor(y)``,
``floor(y) + 1`` (and so in x), neighbours outside the image count as zero, and a sample with
``y <= -1``, ``y >= H``, ``x <= -1`` or ``x >= W`` is zero. At an integer position (every sample, while
the offsets are zero, as DTM starts) the offset gradient is thus the forward difference. The
coordinates are pixel positions in at least float32, whatever the input's dtype, so bf16 inputs sample
exactly where float32 ones do.

Traced code (``torch.compile``, ``torch.jit.trace``) samples with ``F.grid_sample`` instead: the same
values (to the rounding of its normalised coordinates, about 1e-6 pixel in float32), one standard
operator for the compiler and FLOP counters. Its offset gradient at integer positions is either
difference, as that rounding falls. Exported graphs (``torch.export``, ``torch.onnx.export``) gather the
four neighbours at integer indices (``Gather`` in ONNX), which keeps the sampling points exact
when a runtime computes in bfloat16.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from mmlit.utils.compat import is_exporting, is_tracing


def _corners(ys: torch.Tensor, xs: torch.Tensor, H: int, W: int) -> Tuple[torch.Tensor, ...]:
    """For samples at pixel coordinates ``ys``, ``xs`` (B, Hs, Ws) of a (B, H, W) image: the row index of
    each sample's top-left neighbour in the image zero-padded by one pixel and flattened to
    (B * (H + 2) * (W + 2), C), the fractional parts ``ly``, ``lx`` and whether the sample is inside."""
    B = ys.shape[0]
    inside = (ys > -1) & (ys < H) & (xs > -1) & (xs < W)
    y0, x0 = ys.floor(), xs.floor()
    ly, lx = (ys - y0).mul_(inside), (xs - x0).mul_(inside)
    rows = (y0.clamp_(-1, H - 1).long() + 1) * (W + 2) + (x0.clamp_(-1, W - 1).long() + 1)
    rows += torch.arange(B, device=ys.device).view(B, 1, 1) * ((H + 2) * (W + 2))
    return rows.flatten(), ly.reshape(-1, 1), lx.reshape(-1, 1), inside.reshape(-1, 1)


def _padded_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) zero-padded by one pixel, as rows (B * (H + 2) * (W + 2), C)."""
    return F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1)).reshape(-1, x.shape[1])


class _BilinearSample(torch.autograd.Function):
    """Bilinear samples (B, C, Hs, Ws) of ``x`` (B, C, H, W) at pixel coordinates ``ys``, ``xs``
    (B, Hs, Ws), by the rule in the module docstring. Keeps ``x`` and the coordinates for the backward,
    which gathers the four neighbours again."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        rows, ly, lx, inside = _corners(ys, xs, H, W)
        ly, lx = ly.to(x.dtype), lx.to(x.dtype)
        padded = _padded_rows(x)
        # in place, one neighbour at a time: at most three (B * Hs * Ws, C) buffers alive
        out = padded.index_select(0, rows).lerp_(padded.index_select(0, rows + 1), lx)
        bottom = padded.index_select(0, rows + (W + 2)).lerp_(padded.index_select(0, rows + (W + 3)), lx)
        out.lerp_(bottom, ly).mul_(inside)
        del bottom
        ctx.save_for_backward(x, ys, xs)
        # (B * Hs * Ws, C) -> (B, C, Hs, Ws) in channels-last memory
        return out.view(B, *ys.shape[1:], C).permute(0, 3, 1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, ys, xs = ctx.saved_tensors
        B, C, H, W = x.shape
        rows, ly, lx, inside = _corners(ys, xs, H, W)
        grad = grad.permute(0, 2, 3, 1).reshape(-1, C).mul(inside.to(grad.dtype))
        ly_, lx_ = ly.to(grad.dtype), lx.to(grad.dtype)
        grad_x = grad_ys = grad_xs = None
        if ctx.needs_input_grad[0]:
            padded = x.new_zeros(B * (H + 2) * (W + 2), C)
            g_bottom = grad * ly_
            g_top = grad - g_bottom
            for shift, g, w in ((0, g_top, 1 - lx_), (1, g_top, lx_), (W + 2, g_bottom, 1 - lx_),
                                (W + 3, g_bottom, lx_)):
                padded.index_add_(0, rows + shift, g * w)
            del g_top, g_bottom
            grad_x = padded.view(B, H + 2, W + 2, C)[:, 1:-1, 1:-1].permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            # d out / d y = bottom - top; d out / d x = (1 - ly) (v01 - v00) + ly (v11 - v10). In place, a
            # neighbour at a time: at most five (B * Hs * Ws, C) buffers alive besides ``grad``
            padded = _padded_rows(x)
            v00, v01 = padded.index_select(0, rows), padded.index_select(0, rows + 1)
            d_top = v01 - v00
            top = v00.lerp_(v01, lx_)
            del v01
            v10, v11 = padded.index_select(0, rows + (W + 2)), padded.index_select(0, rows + (W + 3))
            del padded
            d_bottom = v11 - v10
            d_y = v10.lerp_(v11, lx_).sub_(top)
            del v11, top
            acc = torch.promote_types(ys.dtype, grad.dtype)
            grad_ys = d_y.mul_(grad).sum(-1, dtype=acc).view_as(ys).to(ys.dtype)
            del d_y
            d_x = d_top.lerp_(d_bottom, ly_)
            del d_bottom
            grad_xs = d_x.mul_(grad).sum(-1, dtype=acc).view_as(xs).to(xs.dtype)
        return grad_x, grad_ys, grad_xs


def deform_sample_k2s2(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Sample the four kernel points of a 2x2 stride-2 deformable conv.

    Args:
        x (Tensor): Input of shape (B, C, H, W).
        offset (Tensor): Offsets of shape (B, 8, Ho, Wo), in the mmcv/torchvision layout: channels
            ``2 * (2 * i + j)`` and ``2 * (2 * i + j) + 1`` hold (dy, dx) of kernel point (i, j).
            ``Ho``/``Wo`` may be ``ceil(H / 2)``/``ceil(W / 2)``: samples below or right of the image read
            zeros, as if the input had been zero-padded.

    Returns:
        Tensor: Samples of shape (B, C, 2 * Ho, 2 * Wo) (channels-last memory); pixel
        (2 * ho + i, 2 * wo + j) holds kernel point (i, j) of output (ho, wo).
    """
    if offset.dim() != 4 or offset.shape[1] != 8:
        raise ValueError(f'offset must have shape (B, 8, Ho, Wo) for a 2x2 kernel with one deformable '
                         f'group, got {tuple(offset.shape)}')
    if is_exporting():
        return _gather_sample(x, offset)
    if is_tracing() or torch.jit.is_tracing():
        return _grid_sample(x, offset)
    Ho, Wo = offset.shape[-2:]
    dtype = torch.promote_types(offset.dtype, torch.float32)
    off = _offsets_by_pixel(offset.to(dtype))
    ys = off[..., 0] + torch.arange(2 * Ho, device=x.device, dtype=dtype).view(-1, 1)
    xs = off[..., 1] + torch.arange(2 * Wo, device=x.device, dtype=dtype)
    return _BilinearSample.apply(x, ys, xs)


def _offsets_by_pixel(offset: torch.Tensor) -> torch.Tensor:
    """Offsets (B, 8, Ho, Wo) as (B, 2Ho, 2Wo, 2): (dy, dx) of each sampled pixel."""
    B, _, Ho, Wo = offset.shape
    # (B, i, j, yx, Ho, Wo) -> (B, Ho, i, Wo, j, yx) -> (B, 2Ho, 2Wo, yx)
    return offset.view(B, 2, 2, 2, Ho, Wo).permute(0, 4, 1, 5, 2, 3).reshape(B, 2 * Ho, 2 * Wo, 2)


def _grid_sample(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """:func:`deform_sample_k2s2` by ``F.grid_sample``, for traced code."""
    H, W = x.shape[-2:]
    off = _offsets_by_pixel(offset)
    Hs, Ws = off.shape[1:3]
    # grid_sample with align_corners=False maps pixel p to the normalised coordinate (2p + 1) / size - 1
    ys = torch.arange(Hs, device=x.device, dtype=off.dtype).mul_(2 / H).add_(1 / H - 1)
    xs = torch.arange(Ws, device=x.device, dtype=off.dtype).mul_(2 / W).add_(1 / W - 1)
    scale = off.new_tensor([2 / W, 2 / H])
    base = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)
    grid = torch.addcmul(base, off.flip(-1), scale)  # (dy, dx) -> normalised (x, y)
    return F.grid_sample(x, grid.to(x.dtype), mode='bilinear', padding_mode='zeros', align_corners=False)


def _gather_sample(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """:func:`deform_sample_k2s2` by integer gathers, for exported graphs.

    Each sample's four neighbours are read at integer pixel indices (the sample's own pixel plus the
    floor of its offset) with weights from the offset's fractional part. A ``GridSample`` would take the
    sampling points in normalised image coordinates, which a runtime computing in bfloat16 (OpenVINO's
    bf16 precision hint) rounds by up to a pixel at detection sizes; here only the offsets, a few pixels
    at most, pass through reduced precision.
    """
    B, C, H, W = x.shape
    off = _offsets_by_pixel(offset)
    Hs, Ws = off.shape[1:3]
    floor = off.floor()
    frac = off - floor
    floor = floor.long()
    rows = floor[..., 0] + torch.arange(Hs, device=x.device).view(-1, 1)  # (B, Hs, Ws)
    cols = floor[..., 1] + torch.arange(Ws, device=x.device)
    first = (torch.arange(B, device=x.device) * (H * W)).view(B, 1, 1)  # each image's first pixel
    pixels = x.permute(0, 2, 3, 1).reshape(B * H * W, C)  # one row of channels per pixel
    out = None
    for dy in (0, 1):
        wy = frac[..., 0] if dy else 1 - frac[..., 0]
        y = rows + dy
        for dx in (0, 1):
            wx = frac[..., 1] if dx else 1 - frac[..., 1]
            xx = cols + dx
            inside = (y >= 0) & (y < H) & (xx >= 0) & (xx < W)  # outside the image: zeros
            # an outside point reads pixel 0 at weight 0 (a Where, not an integer Clip: ONNX has none before
            # opset 12, and mmdeploy exports at 11)
            index = first + torch.where(inside, y * W + xx, torch.zeros_like(y))
            weight = (wy * wx * inside.to(wy.dtype)).to(x.dtype).unsqueeze(-1)
            term = pixels.index_select(0, index.reshape(-1)).view(B, Hs, Ws, C) * weight
            out = term if out is None else out + term
    return out.permute(0, 3, 1, 2)


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
