"""The attention of the LIT family: LIT's global multi-head self-attention, with an optional relative
position bias (:class:`GlobalMultiheadAttention`), and LITv2's HiLo attention (:class:`HiLoAttention`,
"Fast Vision Transformers with HiLo Attention", NeurIPS 2022).

The forwards are the plain formulas; :mod:`mmlit.models.fast_path` has subclasses that compute the same
faster. Attention maps for figures come from :mod:`mmlit.visualization.attention_weights`.
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


class HiLoAttention(BaseModule):
    """HiLo attention: high-frequency heads within local windows, low-frequency heads over pooled windows.

    The heads split in two groups; their outputs are concatenated (Hi-Fi first) to give C channels:

    - **Hi-Fi**, ``num_heads - int(alpha * num_heads)`` heads: self-attention within each
      ``window_size`` x ``window_size`` window, ``hi_proj(softmax(Q K^T / sqrt(d)) V)`` per window.
    - **Lo-Fi**, ``int(alpha * num_heads)`` heads: every token queries the keys and values of the
      windows' average-pooled tokens, ``lo_proj(softmax(Q K_pool^T / sqrt(d)) V_pool)``.

    With ``window_size=1`` all heads are Lo-Fi and nothing is pooled: plain global self-attention (LITv2's
    last stage). A grid that is not a multiple of the window is zero-padded at the bottom/right first and
    the output cropped back, as the official detection and segmentation code does (the padded tokens take
    part in the windows and the pooling). Both branches run through ``F.scaled_dot_product_attention``.

    Args:
        embed_dims (int): Token channels.
        num_heads (int): Attention heads.
        window_size (int): Side of the local windows (``s`` in the paper). Defaults to 2.
        alpha (float): Fraction of the heads that are Lo-Fi. Defaults to 0.9.
        qkv_bias (bool): Bias in the query, key and value projections. Defaults to True.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int = 2,
                 alpha: float = 0.9,
                 qkv_bias: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by num_heads ({num_heads})')
        if window_size < 1:
            raise ValueError(f'window_size must be >= 1, got {window_size}')
        head_dims = embed_dims // num_heads
        self.embed_dims = embed_dims
        self.head_dims = head_dims
        self.window_size = window_size
        self.alpha = alpha
        self.lo_heads = num_heads if window_size == 1 else int(num_heads * alpha)
        self.hi_heads = num_heads - self.lo_heads
        if self.lo_heads:
            lo_dims = self.lo_heads * head_dims
            self.lo_q = nn.Linear(embed_dims, lo_dims, bias=qkv_bias)
            self.lo_kv = nn.Linear(embed_dims, lo_dims * 2, bias=qkv_bias)
            self.lo_proj = nn.Linear(lo_dims, lo_dims)
        if self.hi_heads:
            hi_dims = self.hi_heads * head_dims
            self.hi_qkv = nn.Linear(embed_dims, hi_dims * 3, bias=qkv_bias)
            self.hi_proj = nn.Linear(hi_dims, hi_dims)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """Hi-Fi and Lo-Fi attention of the tokens ``x`` (B, H*W, C) of grid ``hw``; returns (B, H*W, C)."""
        B, N, C = x.shape
        H, W = hw
        s = self.window_size
        x = x.view(B, H, W, C)
        pad_b, pad_r = (s - H % s) % s, (s - W % s) % s
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        outs = []
        if self.hi_heads:
            outs.append(self.hifi(x))
        if self.lo_heads:
            outs.append(self.lofi(x))
        x = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        if pad_b or pad_r:
            x = x[:, :H, :W]
        return x.reshape(B, N, C)

    def hifi(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention within each window of the (B, Hp, Wp, C) grid, Hp and Wp multiples of the window;
        returns (B, Hp, Wp, hi_heads * d)."""
        B, Hp, Wp, C = x.shape
        s, heads, d = self.window_size, self.hi_heads, self.head_dims
        windows = x.view(B, Hp // s, s, Wp // s, s, C).transpose(2, 3).reshape(-1, s * s, C)
        q, k, v = self.hi_qkv(windows).view(-1, s * s, 3, heads, d).permute(2, 0, 3, 1, 4)
        out = self._attend(q, k, v)  # (B * windows, heads, s*s, d)
        out = out.transpose(1, 2).reshape(B, Hp // s, Wp // s, s, s, heads * d)
        return self.hi_proj(out.transpose(2, 3).reshape(B, Hp, Wp, heads * d))

    def lofi(self, x: torch.Tensor) -> torch.Tensor:
        """Every token of the (B, Hp, Wp, C) grid queries the window-pooled tokens (all tokens when the
        window is 1); returns (B, Hp, Wp, lo_heads * d)."""
        B, Hp, Wp, C = x.shape
        s, heads, d = self.window_size, self.lo_heads, self.head_dims
        q = self.lo_q(x).view(B, Hp * Wp, heads, d).transpose(1, 2)
        pooled = x if s == 1 else F.avg_pool2d(x.permute(0, 3, 1, 2), s).permute(0, 2, 3, 1)
        k, v = self.lo_kv(pooled).view(B, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
        out = self._attend(q, k, v)  # (B, heads, Hp*Wp, d)
        return self.lo_proj(out.transpose(1, 2).reshape(B, Hp, Wp, heads * d))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``softmax(Q K^T / sqrt(d)) V`` per head."""
        return F.scaled_dot_product_attention(q, k, v)

    def extra_repr(self) -> str:
        """Shown by ``repr``: the Hi-Fi and Lo-Fi heads and the window size."""
        return f'hi_heads={self.hi_heads}, lo_heads={self.lo_heads}, window_size={self.window_size}'
