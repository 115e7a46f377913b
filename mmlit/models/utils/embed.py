"""Resizing of learnable position embeddings and relative position bias tables."""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

from mmlit.utils.compat import is_exporting


def resize_pos_embed(pos_embed: torch.Tensor,
                     src_shape: Sequence[int],
                     dst_shape: Sequence[int],
                     num_extra_tokens: int = 0,
                     mode: str = 'bilinear') -> torch.Tensor:
    """Resize an absolute position embedding (1, extra + h * w, C) to (1, extra + H * W, C).

    The first ``num_extra_tokens`` slots (class token) are kept as they are. Nothing is computed when the
    shapes already agree, except under an exporter: a traced graph must resize for the sizes it will see.
    """
    src_h, src_w = src_shape
    dst_h, dst_w = dst_shape
    if not is_exporting() and (src_h, src_w) == (dst_h, dst_w):
        return pos_embed
    if pos_embed.shape[1] != num_extra_tokens + src_h * src_w:
        raise ValueError(f'position embedding of shape {tuple(pos_embed.shape)} does not hold '
                         f'{num_extra_tokens} extra tokens and a {src_h}x{src_w} grid')
    extra, grid = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    grid = grid.reshape(1, src_h, src_w, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(dst_h, dst_w), mode=mode, align_corners=False)
    grid = grid.flatten(2).transpose(1, 2)
    return torch.cat((extra, grid), dim=1) if num_extra_tokens else grid


def resize_rel_pos_table(table: torch.Tensor, src_shape: Sequence[int],
                         dst_shape: Sequence[int]) -> torch.Tensor:
    """Resize a relative position bias table ((2h-1) * (2w-1), heads) bicubically.

    Args:
        table (Tensor): The table, one row per relative offset, one column per head.
        src_shape (tuple[int]): (2h-1, 2w-1), the table's grid of relative offsets.
        dst_shape (tuple[int]): (2H-1, 2W-1), the grid wanted.

    Returns:
        Tensor: The table as (heads, 2H-1, 2W-1).
    """
    num_heads = table.shape[1]
    grid = table.t().reshape(1, num_heads, *src_shape)
    if is_exporting() or tuple(src_shape) != tuple(dst_shape):  # a traced graph resizes at every size
        grid = F.interpolate(grid, size=tuple(dst_shape), mode='bicubic', align_corners=False)
    return grid[0]


def rel_pos_index(hw: Tuple[int, int], device=None) -> torch.Tensor:
    """(H*W, H*W) indices into a flattened (2H-1) x (2W-1) table: entry [(y1, x1), (y2, x2)] is the index
    of the relative offset (y1 - y2 + H - 1, x1 - x2 + W - 1)."""
    H, W = hw
    ys, xs = torch.meshgrid(torch.arange(H, device=device), torch.arange(W, device=device), indexing='ij')
    coords = torch.stack((ys.flatten(), xs.flatten()))
    rel = coords[:, :, None] - coords[:, None, :]
    return (rel[0] + H - 1) * (2 * W - 1) + rel[1] + W - 1


def rel_pos_bias_by_index(table: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """Expand a (heads, 2H-1, 2W-1) table into the (heads, H*W, H*W) attention bias of an HxW grid:
    entry [h, (y1, x1), (y2, x2)] is ``table[h, y1 - y2 + H - 1, x1 - x2 + W - 1]``, gathered through
    :func:`rel_pos_index` as the official code does.

    (:func:`mmlit.models.fast_path.rel_pos_bias_from_table` gives the same as strided windows of the
    table, without the gather.)"""
    N = hw[0] * hw[1]
    index = rel_pos_index(hw, table.device).view(-1)
    return table.flatten(1)[:, index].view(table.shape[0], N, N)
