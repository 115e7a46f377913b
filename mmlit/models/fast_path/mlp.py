"""The MLP of inference over chunks of tokens."""
from typing import Callable

import torch

from mmlit.utils.compat import is_tracing

# Tokens per chunk. The hidden activations of the early stages are large (LIT-Ti stage 1: 512 channels
# per token; at 800x1216, 124 MB); a chunk of 2048 tokens keeps each hidden block in cache between the
# two linear layers and the GELU, and allocates no large buffer (page-faulted in) per block.
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
    if torch.is_grad_enabled() or B * N <= chunk_tokens or is_tracing():
        return fn(x)
    out = torch.cat([fn(part) for part in x.reshape(B * N, C).split(chunk_tokens)])
    return out.view(B, N, -1)
