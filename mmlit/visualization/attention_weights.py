"""The attention weights of :class:`~mmlit.models.layers.GlobalMultiheadAttention` and of
:class:`~mmlit.models.layers.HiLoAttention`, and the plain output of the former.

For figures (``vis_attention_maps.py`` draws the weights of one query), tests and ``benchmark.py --ops``,
which compare the fast paths with the plain formula.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from mmlit.models.layers import GlobalMultiheadAttention, HiLoAttention


def attention_weights(attn: GlobalMultiheadAttention,
                      x: torch.Tensor,
                      hw: Tuple[int, int],
                      queries: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The attention matrix ``softmax(QK^T / sqrt(d) + B)`` of ``attn`` for the tokens ``x`` (B, N, C) of
    grid ``hw``. Extra tokens (a class token) come first in ``x``, before the H*W grid tokens; a relative
    position bias needs the grid tokens alone.

    Args:
        queries (Tensor, optional): Indices of the query tokens to compute; all N if None.

    Returns:
        Tensor: (B, heads, Q, N) attention weights.
    """
    B, N, C = x.shape
    q, k, _ = attn.qkv(x).reshape(B, N, 3, attn.num_heads, C // attn.num_heads).permute(2, 0, 3, 1, 4)
    rows = torch.arange(N, device=x.device) if queries is None else queries.to(x.device)
    logits = (q[:, :, rows] * attn.scale) @ k.transpose(-2, -1)
    if attn.relative_position_bias_table is not None:
        H, W = hw
        if N != H * W:
            raise ValueError(f'A relative position bias needs exactly the {H}x{W} grid tokens, got {N}')
        logits = logits + attn.relative_position_bias(hw)[:, rows]
    return logits.softmax(-1)


def reference_attention(attn: GlobalMultiheadAttention, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """``attn(x, hw)`` computed by the plain formula (whatever fast path ``attn`` runs), as the official
    code computes it: the bias gathered through an index tensor, the attention matrix materialised."""
    return GlobalMultiheadAttention.forward(attn, x, hw)


def hilo_attention_maps(attn: HiLoAttention, x: torch.Tensor, hw: Tuple[int, int], query: int) -> torch.Tensor:
    """Where the token ``query`` (an index into the H*W grid) of ``x`` (1, H*W, C) looks, per head of ``attn``.

    Hi-Fi heads first (as in the output): the softmax weights over the tokens of the query's window, zero
    elsewhere. Lo-Fi heads: the weights over the pooled windows, each spread evenly over its window's
    tokens (every head's map sums to 1 over the grid, padding included before the crop).

    Returns:
        Tensor: (heads, H, W).
    """
    H, W = hw
    s, d = attn.window_size, attn.head_dims
    grid = x[:1].view(1, H, W, -1)
    pad_b, pad_r = (s - H % s) % s, (s - W % s) % s
    grid = F.pad(grid, (0, 0, 0, pad_r, 0, pad_b))
    Hp, Wp = grid.shape[1:3]
    row, col = divmod(int(query), W)
    maps = []
    if attn.hi_heads:
        top, left = row // s * s, col // s * s
        window = grid[:, top:top + s, left:left + s].reshape(1, s * s, -1)
        q, k, _ = attn.hi_qkv(window).view(s * s, 3, attn.hi_heads, d).permute(1, 2, 0, 3)
        index = (row - top) * s + (col - left)
        weights = (q[:, index:index + 1] * d**-0.5 @ k.transpose(-2, -1)).softmax(-1)  # (heads, 1, s*s)
        hi = grid.new_zeros(attn.hi_heads, Hp, Wp)
        hi[:, top:top + s, left:left + s] = weights.view(-1, s, s)
        maps.append(hi)
    if attn.lo_heads:
        q = attn.lo_q(grid[:, row, col]).view(attn.lo_heads, 1, d)
        pooled = grid if s == 1 else F.avg_pool2d(grid.permute(0, 3, 1, 2), s).permute(0, 2, 3, 1)
        k, _ = attn.lo_kv(pooled).view(-1, 2, attn.lo_heads, d).permute(1, 2, 0, 3)
        weights = (q * d**-0.5 @ k.transpose(-2, -1)).softmax(-1)  # (heads, 1, cells)
        cells = weights.view(attn.lo_heads, Hp // s, Wp // s)
        maps.append(cells.repeat_interleave(s, 1).repeat_interleave(s, 2) / (s * s))
    return torch.cat(maps)[:, :H, :W]
