"""Attention over few keys, arranged for speed on CPU: the fast path of
:class:`~mmlit.models.layers.HiLoAttention`.

The same ``softmax(Q K^T / sqrt(d)) V`` as ``F.scaled_dot_product_attention``. When every query sees at
most :data:`SHORT_KEYS` keys and the scores take at most :data:`SHORT_SCORES_BYTES`, two batched matmuls
and a softmax beat the CPU flash kernel, whose tiling costs more than such small products: HiLo at
classification sizes (Hi-Fi windows of 4 tokens, Lo-Fi queries over 49 pooled keys at 224x224).
Elsewhere (more keys, larger scores, GPUs) the flash kernel runs. ``docs/speed.md`` has the measurements.
"""
import torch
import torch.nn.functional as F

from mmlit.utils.compat import is_exporting

from ..layers import HiLoAttention

# At most this many keys per query ...
SHORT_KEYS = 64
# ... and at most this many bytes of scores, for the two matmuls.
SHORT_SCORES_BYTES = 16 * 2**20


def short_key_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v)`` (no mask, no dropout), as two matmuls when the keys are
    few (see the module doc).

    Args:
        q (Tensor): Queries (..., L, d).
        k (Tensor): Keys (..., S, d).
        v (Tensor): Values (..., S, d_v).

    Returns:
        Tensor: (..., L, d_v).
    """
    S = k.shape[-2]
    scores_bytes = q.shape[:-1].numel() * S * q.element_size()
    if q.device.type != 'cpu' or S > SHORT_KEYS or scores_bytes > SHORT_SCORES_BYTES:
        return F.scaled_dot_product_attention(q, k, v)
    scores = (q * q.shape[-1]**-0.5) @ k.transpose(-2, -1)
    return scores.softmax(dim=-1) @ v


class FastHiLoAttention(HiLoAttention):
    """:class:`~mmlit.models.layers.HiLoAttention` with its attention through :func:`short_key_attention`;
    the plain one under exporters."""

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The plain ``_attend``'s result, faster over few keys on CPU."""
        if is_exporting():
            return super()._attend(q, k, v)
        return short_key_attention(q, k, v)
