"""The resized absolute position embedding, computed once per grid size in eval mode: the fast path of
:class:`~mmlit.models.layers.AbsolutePositionEmbedding`."""
from typing import Optional, Tuple

import torch

from ..layers import AbsolutePositionEmbedding
from .param_cache import cached


class FastAbsolutePositionEmbedding(AbsolutePositionEmbedding):
    """:class:`~mmlit.models.layers.AbsolutePositionEmbedding` whose resized embedding is kept while the
    embedding, the grid and the dtype are unchanged (eval mode only, see :func:`~.param_cache.cached`)."""

    def resized(self, hw: Tuple[int, int], dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """The plain ``resized``'s result, cached."""
        return cached(self, 'pos_embed', (self.pos_embed, ), (tuple(hw), dtype),
                      lambda: AbsolutePositionEmbedding.resized(self, hw, dtype))
