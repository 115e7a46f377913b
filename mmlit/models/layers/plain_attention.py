"""The attention matrix of :class:`~mmlit.models.layers.GlobalMultiheadAttention`, and its plain output.

For figures (``vis_attention_maps.py`` draws rows of the matrix), tests and ``benchmark.py --ops``, which
compare the fast path with the plain formula.
"""
from typing import Optional, Tuple

import torch

from .attention import GlobalMultiheadAttention


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
    """``attn(x, hw)`` computed by the plain formula (the module's fast path off), as the official code
    computes it: the bias gathered through an index tensor, the attention matrix materialised."""
    fast_path = attn.fast_path
    attn.fast_path = False
    try:
        return attn(x, hw)
    finally:
        attn.fast_path = fast_path
