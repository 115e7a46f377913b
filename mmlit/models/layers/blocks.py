"""The two transformer blocks of the LIT family: MLP-only (early stages) and self-attention (late stages).

LIT's attention is global (:class:`GlobalMultiheadAttention`), LITv2's HiLo (:class:`HiLoAttention`,
``hilo=dict(window_size=..., alpha=...)``); LITv2's MLP has a depthwise conv (``dw_conv=True``).
"""
from typing import Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmengine.model import BaseModule

from .attention import GlobalMultiheadAttention
from .hilo_attention import HiLoAttention
from .mlp import Mlp


class MLPBlock(BaseModule):
    """Pre-norm MLP with a residual connection and stochastic depth; no attention.

    ``x + DropPath(MLP(LN(x)))``.

    Args:
        embed_dims (int): Token channels.
        mlp_ratio (float): Hidden/embed ratio of the MLP. Defaults to 4.
        drop_rate (float): Dropout in the MLP. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        norm_cfg (dict): Normalisation before the MLP. Defaults to ``dict(type='LN')``.
        dw_conv (bool): LITv2's MLP, with a depthwise 3x3 conv. Defaults to False.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 mlp_ratio: float = 4.,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='LN'),
                 dw_conv: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate, dw_conv)
        self.drop_path = build_dropout(dict(type='DropPath', drop_prob=drop_path_rate))

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """``x + DropPath(MLP(LN(x)))`` for tokens ``x`` (B, N, C) of grid ``hw`` (used by the depthwise
        conv of LITv2's MLP). Returns (B, N, C)."""
        return x + self.drop_path(self.ffn(self.norm(x), hw))


class MSABlock(BaseModule):
    """Pre-norm multi-head self-attention followed by a pre-norm MLP.

    ``x = x + DropPath(MSA(LN(x)))``, ``x = x + DropPath(MLP(LN(x)))``; MSA is global attention (LIT) or
    HiLo attention (LITv2, ``hilo``).

    Args:
        embed_dims (int): Token channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): Hidden/embed ratio of the MLP. Defaults to 4.
        qkv_bias (bool): Bias in the qkv projection. Defaults to True.
        drop_rate (float): Dropout after the attention projection and in the MLP. Defaults to 0.
        attn_drop_rate (float): Dropout on the attention weights. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate of both branches. Defaults to 0.
        rel_pos_shape (tuple[int], optional): (h, w) grid of the relative position bias table; None for
            no bias.
        norm_cfg (dict): Normalisation before each branch. Defaults to ``dict(type='LN')``.
        hilo (dict, optional): ``window_size`` and ``alpha`` of :class:`HiLoAttention`, which then replaces
            global attention (``rel_pos_shape`` must be None; like the official HiLo it has no attention
            or projection dropout, so ``attn_drop_rate`` and ``drop_rate`` apply to the MLP only).
            Defaults to None.
        dw_conv (bool): LITv2's MLP, with a depthwise 3x3 conv. Defaults to False.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 rel_pos_shape: Optional[Sequence[int]] = None,
                 norm_cfg: dict = dict(type='LN'),
                 hilo: Optional[dict] = None,
                 dw_conv: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        if hilo is not None:
            if rel_pos_shape is not None:
                raise ValueError('HiLo attention takes no relative position bias: give hilo or rel_pos_shape')
            self.attn = HiLoAttention(embed_dims, num_heads, qkv_bias=qkv_bias, **hilo)
        else:
            self.attn = GlobalMultiheadAttention(
                embed_dims, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop_rate, proj_drop=drop_rate,
                rel_pos_shape=rel_pos_shape)
        self.drop_path = build_dropout(dict(type='DropPath', drop_prob=drop_path_rate))
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate, dw_conv)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """Self-attention then MLP, each pre-norm with a residual.

        Args:
            x (Tensor): Tokens of shape (B, N, C); N = H*W with a relative position bias.
            hw (tuple[int]): The (H, W) token grid.

        Returns:
            Tensor: (B, N, C).
        """
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.ffn(self.norm2(x), hw))
