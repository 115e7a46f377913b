"""The resized absolute position embedding, computed once per grid size in eval mode."""
from typing import Tuple

import torch

from .param_cache import cached


def cached_pos_embed(module, hw: Tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """``module.resized(hw)`` in ``dtype``, kept while the embedding and the grid are unchanged.

    Args:
        module (AbsolutePositionEmbedding): The position embedding.
        hw (tuple[int]): The (H, W) token grid.
        dtype (torch.dtype): The dtype of the tokens.

    Returns:
        Tensor: (1, extra + H*W, C).
    """
    return cached(module, 'pos_embed', (module.pos_embed, ), (tuple(hw), dtype),
                  lambda: module.resized(hw).to(dtype))
