"""The learnable absolute position embedding of LIT-Ti, resized to the input's token grid."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from ..utils import resize_pos_embed


class AbsolutePositionEmbedding(BaseModule):
    """A learnable absolute position embedding sized for the pretraining grid, bilinearly resized to the
    actual H x W grid (LIT-Ti). ``num_extra_tokens`` slots in front belong to a class token.


    Args:
        embed_dims (int): Token channels.
        grid_shape (tuple[int]): (h, w) token grid at the pretraining resolution.
        num_extra_tokens (int): Slots for extra tokens in front of the grid. Defaults to 0.
        drop_rate (float): Dropout after adding the embedding. Defaults to 0.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, embed_dims: int, grid_shape: Sequence[int], num_extra_tokens: int = 0,
                 drop_rate: float = 0., init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.grid_shape = tuple(grid_shape)
        self.num_extra_tokens = num_extra_tokens
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_extra_tokens + self.grid_shape[0] * self.grid_shape[1], embed_dims))
        self.drop = nn.Dropout(drop_rate)
        self._register_load_state_dict_pre_hook(self._resize_on_load)

    def init_weights(self) -> None:
        """Initialise as MMEngine does, then the embedding: truncated normal, std 0.02."""
        super().init_weights()
        trunc_normal_(self.pos_embed, std=.02)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """Add the embedding, resized to the grid ``hw``, to ``x`` (B, extra + H*W, C) whose extra tokens
        come first (or (B, H*W, C): then the extra-token slots are skipped)."""
        pos = self.resized(hw, x.dtype)
        if x.shape[1] == pos.shape[1] - self.num_extra_tokens:  # no extra tokens in x: skip their slots
            pos = pos[:, self.num_extra_tokens:]
        return self.drop(x + pos)

    def resized(self, hw: Tuple[int, int], dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """The embedding bilinearly resized to an H x W grid, in ``dtype`` (its own if None):
        (1, extra + H*W, C)."""
        pos = resize_pos_embed(self.pos_embed, self.grid_shape, hw, self.num_extra_tokens)
        return pos if dtype is None else pos.to(dtype)

    def _resize_on_load(self, state_dict, prefix, *args, **kwargs):
        """``load_state_dict`` pre-hook: resize a loaded embedding of another square grid to this one.

        The grid part is resized bilinearly, the extra-token slots are kept (``state_dict`` is edited in
        place). Other mismatches (a non-square grid, other channels) are left for ``load_state_dict``
        to report.
        """
        key = prefix + 'pos_embed'
        pos = state_dict.get(key)
        if pos is None or pos.shape == self.pos_embed.shape:
            return
        n = pos.shape[1] - self.num_extra_tokens
        side = int(round(n**0.5))
        if side * side != n or pos.shape[-1] != self.pos_embed.shape[-1]:
            return  # let load_state_dict report the mismatch
        state_dict[key] = resize_pos_embed(pos.float(), (side, side), self.grid_shape,
                                           self.num_extra_tokens).to(pos.dtype)
