"""The blocks' MLP branch, arranged for speed: the fast paths of :class:`~mmlit.models.layers.MLPBlock`
and :class:`~mmlit.models.layers.MSABlock`.

``x + DropPath(MLP(LN(x)))`` as the plain blocks compute it, with two changes in inference:

- an MLP without a depthwise conv treats every token alone, so the tokens go through it in chunks of
  :data:`CHUNK_TOKENS` (LIT-Ti's stage-1 hidden activations at 800x1216 take 124 MB; a chunk's stay in
  cache between the two linear layers and the GELU);
- in float32 CPU inference both linear layers run through oneDNN with the bias, the GELU and the
  residual add inside the GEMMs (:mod:`.linear`), where that is what the plain modules compute.
"""
from typing import Callable, Tuple

import torch
import torch.nn as nn

from mmlit.utils.compat import is_tracing

from ..layers import MLPBlock, MSABlock
from .linear import fused_linear, onednn_linear_usable

# Tokens per chunk of the inference MLP.
CHUNK_TOKENS = 2048


def per_token_chunks(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     chunk_tokens: int = CHUNK_TOKENS) -> torch.Tensor:
    """``fn(x)`` for a function that treats every token on its own (norm, MLP, residual).

    Without autograd, the tokens of the whole batch go through ``fn`` in chunks of ``chunk_tokens``;
    tokens are independent, so the result is ``fn(x)``. With autograd, while tracing, or when ``x``
    fits in one chunk, ``fn(x)`` runs as it is.

    Args:
        fn (Callable): Maps tokens (..., C) to tokens (..., C'), each token alone.
        x (Tensor): Tokens (B, N, C).
        chunk_tokens (int): Tokens per chunk. Defaults to :data:`CHUNK_TOKENS`.

    Returns:
        Tensor: ``fn(x)``, (B, N, C').
    """
    B, N, C = x.shape
    if torch.is_grad_enabled() or is_tracing() or B * N <= chunk_tokens:  # the size last: no guard on N
        return fn(x)
    out = torch.cat([fn(part) for part in x.reshape(B * N, C).split(chunk_tokens)])
    return out.view(B, N, -1)


def _fusable(block: nn.Module, x: torch.Tensor) -> bool:
    """Whether the MLP of ``block`` on ``x`` may run through oneDNN's fused linears: float32 CPU inference
    (:func:`~.linear.onednn_linear_usable`), the exact GELU, and the modules the fused computation does
    not call (the MLP itself, its activation and dropout, the DropPath) in eval mode without hooks."""
    ffn = block.ffn
    return (type(ffn.act) is nn.GELU and ffn.act.approximate == 'none'
            and onednn_linear_usable(x, ffn.fc1, ffn.fc2, skipped=(ffn, ffn.act, ffn.drop, block.drop_path)))


def _residual_mlp(block: nn.Module, norm: nn.Module, x: torch.Tensor, hw: Tuple[int, int],
                  fused: bool) -> torch.Tensor:
    """``x + DropPath(MLP(norm(x)))``; with ``fused``, through oneDNN."""
    ffn = block.ffn
    if not fused:
        return x + block.drop_path(ffn(norm(x), hw))
    hidden = fused_linear(norm(x), ffn.fc1, gelu=ffn.dwconv is None)
    if ffn.dwconv is not None:
        # two statements: the linear's output is freed before the GELU allocates (one hidden-sized buffer
        # fewer at the peak)
        hidden = ffn.dwconv_tokens(hidden, hw)
        hidden = ffn.act(hidden)
    return fused_linear(hidden, ffn.fc2, residual=x)


def residual_mlp(block: nn.Module, norm: nn.Module, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """``x + DropPath(MLP(norm(x)))`` of ``block`` (its ``ffn`` and ``drop_path``) on tokens ``x``
    (B, N, C) of grid ``hw``, faster."""
    fused = _fusable(block, x)
    if block.ffn.dwconv is None:
        return per_token_chunks(lambda t: _residual_mlp(block, norm, t, hw, fused), x)
    return _residual_mlp(block, norm, x, hw, fused)


class FastMLPBlock(MLPBlock):
    """:class:`~mmlit.models.layers.MLPBlock` with its MLP through :func:`residual_mlp`."""

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """The plain forward's result, faster; see there."""
        return residual_mlp(self, self.norm, x, hw)


class FastMSABlock(MSABlock):
    """:class:`~mmlit.models.layers.MSABlock` with its MLP through :func:`residual_mlp` (the attention
    is the attention module's, fast or plain)."""

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """The plain forward's result, faster; see there."""
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return residual_mlp(self, self.norm2, x, hw)
