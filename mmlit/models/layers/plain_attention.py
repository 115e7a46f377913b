"""Global attention written out the plain way, as the official LIT code computes it.

The bias is gathered through an index tensor and the attention matrix is materialised:
``softmax(QK^T / sqrt(d) + B) V``. :class:`~mmlit.models.layers.GlobalMultiheadAttention` computes the
same with its fast paths; this is the reference its tests and ``benchmark.py --ops`` compare with, and the
source of the attention maps that ``vis_attention_maps.py`` draws.
"""
from typing import Optional, Tuple

import torch

from ..utils import rel_pos_index, resize_rel_pos_table
from .attention import GlobalMultiheadAttention


def _plain_qkv(attn: GlobalMultiheadAttention, x: torch.Tensor):
    """Q, K and V of ``attn`` for the tokens ``x`` (B, N, C).

    Returns:
        Tensor: (3, B, heads, N, C // heads): q, k and v stacked, to unpack.
    """
    B, N, C = x.shape
    return attn.qkv(x).reshape(B, N, 3, attn.num_heads, C // attn.num_heads).permute(2, 0, 3, 1, 4)


def _plain_weights(attn: GlobalMultiheadAttention, q: torch.Tensor, k: torch.Tensor, hw: Tuple[int, int],
                   rows: Optional[torch.Tensor]) -> torch.Tensor:
    """softmax(QK^T / sqrt(d) + B) for the query ``rows`` (all if None), the bias gathered by index."""
    heads, N, d = k.shape[1:]
    rows = torch.arange(N, device=q.device) if rows is None else rows.to(q.device)
    logits = (q[:, :, rows] * d**-0.5) @ k.transpose(-2, -1)
    if attn.relative_position_bias_table is not None:
        H, W = hw
        if N != H * W:
            raise ValueError(f'A relative position bias needs exactly the {H}x{W} grid tokens, got {N}')
        table = resize_rel_pos_table(attn.relative_position_bias_table, attn.table_shape,
                                     (2 * H - 1, 2 * W - 1)).flatten(1)
        index = rel_pos_index(hw, q.device)[rows]
        logits = logits + table[:, index.view(-1)].view(heads, len(rows), N)
    return logits.softmax(-1)


def attention_weights(attn: GlobalMultiheadAttention,
                      x: torch.Tensor,
                      hw: Tuple[int, int],
                      queries: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The attention matrix ``softmax(QK^T / sqrt(d) + B)`` of ``attn`` for the tokens ``x`` (B, N, C) of
    grid ``hw``, computed the plain way. Extra tokens (a class token) come first in ``x``, before the
    H*W grid tokens; a relative position bias needs the grid tokens alone.

    Args:
        queries (Tensor, optional): Indices of the query tokens to compute; all N if None.

    Returns:
        Tensor: (B, heads, Q, N) attention weights (for attention-map figures and tests).
    """
    q, k, _ = _plain_qkv(attn, x)
    return _plain_weights(attn, q, k, hw, queries)


def reference_attention(attn: GlobalMultiheadAttention, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """What ``attn(x, hw)`` computes, written the plain way (as the official code does): the bias gathered
    through an index tensor into (heads, N, N), the attention matrix materialised,
    ``softmax(QK^T / sqrt(d) + B) V``. Eval mode; for tests and benchmarks of the fast path."""
    B, N, C = x.shape
    q, k, v = _plain_qkv(attn, x)
    out = (_plain_weights(attn, q, k, hw, None) @ v).transpose(1, 2).reshape(B, N, C)
    return attn.proj(out)
