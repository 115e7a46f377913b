"""Global multi-head self-attention of LIT's attention stages, with an optional relative position bias.

The forward is the plain formula; :class:`~mmlit.models.fast_path.FastGlobalMultiheadAttention`
computes the same faster. Attention maps for figures come from
:mod:`mmlit.visualization.attention_weights`.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from ..utils import rel_pos_bias_by_index, resize_rel_pos_table


class GlobalMultiheadAttention(BaseModule):
    """Global multi-head self-attention over all tokens of a stage.

    ``proj(softmax(Q K^T / sqrt(d) + B) V)`` per head. With ``rel_pos_shape``, B is a learnable relative
    position bias: a table for the token grid of the pretraining resolution, resized (bicubic) to the
    (2H-1) x (2W-1) relative offsets of the actual H x W grid, as LIT-S/M/B do; without it B = 0.

    Args:
        embed_dims (int): Token channels.
        num_heads (int): Attention heads.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        attn_drop (float): Dropout on the attention weights. Defaults to 0.
        proj_drop (float): Dropout after the output projection. Defaults to 0.
        rel_pos_shape (tuple[int], optional): (h, w) token grid the bias table is sized for; None for no
            relative position bias.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 rel_pos_shape: Optional[Sequence[int]] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        if rel_pos_shape is not None:
            h, w = rel_pos_shape
            self.table_shape = (2 * h - 1, 2 * w - 1)
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros(self.table_shape[0] * self.table_shape[1], num_heads))
            self._register_load_state_dict_pre_hook(self._resize_table_on_load)
        else:
            self.table_shape = None
            self.relative_position_bias_table = None

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """``proj(softmax(Q K^T / sqrt(d) + B) V)`` over all tokens, per head.

        Args:
            x (Tensor): Tokens of shape (B, N, C). With a relative position bias N must be H*W (no extra
                tokens); without one, ``hw`` is unused and extra tokens may be in ``x``.
            hw (tuple[int]): The (H, W) token grid.

        Returns:
            Tensor: The output tokens, (B, N, C).
        """
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.relative_position_bias_table is not None:
            attn = attn + self.relative_position_bias(hw)
        attn = F.dropout(attn.softmax(dim=-1), self.attn_drop, self.training)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))

    def relative_position_bias(self, hw: Tuple[int, int]) -> torch.Tensor:
        """The bias B of an H x W grid, (heads, H*W, H*W): the table resized to (2H-1) x (2W-1) relative
        offsets, gathered by index."""
        H, W = hw
        table = resize_rel_pos_table(self.relative_position_bias_table, self.table_shape, (2 * H - 1, 2 * W - 1))
        return rel_pos_bias_by_index(table, hw)

    def init_weights(self) -> None:
        """Initialise as MMEngine does, then the relative position bias table (if any): truncated normal,
        std 0.02."""
        super().init_weights()
        if self.relative_position_bias_table is not None:
            trunc_normal_(self.relative_position_bias_table, std=.02)

    def _resize_table_on_load(self, state_dict, prefix, *args, **kwargs):
        """Resize a (square) table of another pretraining resolution to this module's size."""
        key = prefix + 'relative_position_bias_table'
        table = state_dict.get(key)
        if table is None or table.shape == self.relative_position_bias_table.shape:
            return
        side = int(round(table.shape[0]**0.5))
        if side * side != table.shape[0] or table.shape[1] != self.num_heads:
            return  # let load_state_dict report the mismatch
        resized = resize_rel_pos_table(table.float(), (side, side), self.table_shape)
        state_dict[key] = resized.flatten(1).t().to(table.dtype)

    def extra_repr(self) -> str:
        """Shown by ``repr``: the heads and the (2h-1, 2w-1) shape of the bias table (None without one)."""
        return f'num_heads={self.num_heads}, rel_pos_table={self.table_shape}'
