"""The two transformer blocks of the LIT family: MLP-only (early stages) and self-attention (late stages).

LIT's MLP is two linear layers (an mmcv ``FFN``) and its attention global (:class:`GlobalMultiheadAttention`);
LITv2's MLP has a depthwise conv (:class:`ConvFFN`, ``dw_conv=True``) and its attention is HiLo
(:class:`HiLoAttention`, ``hilo=dict(window_size=..., alpha=...)``).
"""
from typing import Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule

from ..fast_path import per_token_chunks
from ..fast_path.linear import fused_linear, onednn_linear_usable
from .attention import GlobalMultiheadAttention
from .conv_ffn import ConvFFN
from .hilo_attention import HiLoAttention


def _ffn(embed_dims: int, mlp_ratio: float, drop_rate: float, drop_path_rate: float, dw_conv: bool = False):
    """The MLP of a block: LIT's as an mmcv ``FFN``, residual included, or LITv2's :class:`ConvFFN`.

    ``Linear(C, int(C * mlp_ratio))``, (``dw_conv``: depthwise 3x3 conv), GELU, dropout,
    ``Linear(.., C)``, dropout (``drop_rate``); the branch goes through DropPath (``drop_path_rate``)
    (the ``dropout_layer`` of either) before the identity is added.
    """
    if dw_conv:
        return ConvFFN(embed_dims, int(embed_dims * mlp_ratio), drop_rate, drop_path_rate)
    return FFN(
        embed_dims=embed_dims,
        feedforward_channels=int(embed_dims * mlp_ratio),
        num_fcs=2,
        ffn_drop=drop_rate,
        dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
        act_cfg=dict(type='GELU'),
        add_identity=True)


def _residual_mlp(block: BaseModule,
                  norm: torch.nn.Module,
                  x: torch.Tensor,
                  hw: Tuple[int, int],
                  fused: bool = False) -> torch.Tensor:
    """``x + DropPath(MLP(LN(x)))`` with the block's MLP (``block.ffn``).

    For an mmcv ``FFN``, what ``ffn(norm(x), identity=x)`` computes, without the signature inspection
    that the deprecation decorator of mmcv's ``FFN.forward`` runs on every call (``torch.compile`` of
    torch 2.1 cannot trace it and splits the graph there). With ``fused`` (only where :func:`_fusable_mlp`
    holds), the same through oneDNN: the biases, the GELU (LIT's MLP) and the residual add inside the GEMMs.
    """
    ffn = block.ffn
    if fused and isinstance(ffn, ConvFFN):
        return ffn.forward_fused(norm(x), hw, identity=x)
    if fused:
        hidden = fused_linear(norm(x), ffn.layers[0][0], gelu=True)
        return fused_linear(hidden, ffn.layers[1], residual=x)
    branch = ffn(norm(x), hw) if isinstance(ffn, ConvFFN) else ffn.gamma2(ffn.layers(norm(x)))
    return x + ffn.dropout_layer(branch)


def _fusable_mlp(block: BaseModule, x: torch.Tensor) -> bool:
    """Whether the block's MLP on ``x`` may run through oneDNN's fused linears, in float32 CPU inference
    (:func:`~mmlit.models.fast_path.linear.onednn_linear_usable`): LIT's mmcv ``FFN`` when it computes
    exactly ``x + fc2(GELU(fc1(x)))`` (two plain linear layers, the exact GELU, no layer scale, every
    dropout and DropPath in eval mode, no forward hooks on any of its modules); LITv2's
    :class:`ConvFFN` where :meth:`ConvFFN.fusable`."""
    ffn = block.ffn
    if not block.fast_path:
        return False
    if isinstance(ffn, ConvFFN):
        return ffn.fusable(x)
    if not (isinstance(ffn, FFN) and isinstance(ffn.gamma2, torch.nn.Identity)):
        return False
    layers = ffn.layers
    if not (len(layers) == 3 and isinstance(layers[0], torch.nn.Sequential) and len(layers[0]) == 3
            and type(layers[0][1]) is torch.nn.GELU and layers[0][1].approximate == 'none'):
        return False
    return onednn_linear_usable(x, layers[0][0], layers[1], skipped=[*layers.modules(), ffn.gamma2, ffn.dropout_layer])


def _mlp_branch(block: BaseModule, norm: torch.nn.Module, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """``x + DropPath(MLP(LN(x)))``; on the fast path, an MLP without a depthwise conv (its tokens are
    independent) runs over chunks of tokens (:func:`~mmlit.models.fast_path.per_token_chunks`), and in CPU
    inference either MLP through oneDNN's fused linears (:mod:`mmlit.models.fast_path.linear`)."""
    fused = _fusable_mlp(block, x)
    if block.fast_path and not isinstance(block.ffn, ConvFFN):
        return per_token_chunks(lambda t: _residual_mlp(block, norm, t, hw, fused), x)
    return _residual_mlp(block, norm, x, hw, fused)


class MLPBlock(BaseModule):
    """Pre-norm MLP with a residual connection and stochastic depth; no attention.

    ``x + DropPath(MLP(LN(x)))``.

    Args:
        embed_dims (int): Token channels.
        mlp_ratio (float): Hidden/embed ratio of the MLP. Defaults to 4.
        drop_rate (float): Dropout in the MLP. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        norm_cfg (dict): Normalisation before the MLP. Defaults to ``dict(type='LN')``.
        dw_conv (bool): LITv2's MLP, with a depthwise 3x3 conv (:class:`ConvFFN`). Defaults to False.
        fast_path (bool): Run inference over chunks of tokens (:mod:`mmlit.models.fast_path.mlp`; not with
            ``dw_conv``) and, on the CPU, through oneDNN's fused linears
            (:mod:`mmlit.models.fast_path.linear`); same results. Defaults to True.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 mlp_ratio: float = 4.,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='LN'),
                 dw_conv: bool = False,
                 fast_path: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = _ffn(embed_dims, mlp_ratio, drop_rate, drop_path_rate, dw_conv)
        self.fast_path = fast_path

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """``x + DropPath(MLP(LN(x)))`` for tokens ``x`` (B, N, C) of grid ``hw`` (used by the depthwise
        conv of LITv2's MLP). Returns (B, N, C)."""
        return _mlp_branch(self, self.norm, x, hw)


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
        dw_conv (bool): LITv2's MLP, with a depthwise 3x3 conv (:class:`ConvFFN`). Defaults to False.
        fast_path (bool): Run inference of the MLP over chunks of tokens (:mod:`mmlit.models.fast_path.mlp`),
            on the CPU through oneDNN's fused linears (:mod:`mmlit.models.fast_path.linear`), and the
            attention on its fast path (see :class:`GlobalMultiheadAttention`); same results.
            Defaults to True.
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
                 fast_path: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        if hilo is not None:
            if rel_pos_shape is not None:
                raise ValueError('HiLo attention takes no relative position bias: give hilo or rel_pos_shape')
            self.attn = HiLoAttention(embed_dims, num_heads, qkv_bias=qkv_bias, fast_path=fast_path, **hilo)
        else:
            self.attn = GlobalMultiheadAttention(
                embed_dims, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop_rate, proj_drop=drop_rate,
                rel_pos_shape=rel_pos_shape, fast_path=fast_path)
        self.drop_path = build_dropout(dict(type='DropPath', drop_prob=drop_path_rate))
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = _ffn(embed_dims, mlp_ratio, drop_rate, drop_path_rate, dw_conv)
        self.fast_path = fast_path

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """Self-attention then MLP, each pre-norm with a residual.

        Args:
            x (Tensor): Tokens of shape (B, N, C); N = H*W with a relative position bias.
            hw (tuple[int]): The (H, W) token grid.

        Returns:
            Tensor: (B, N, C).
        """
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return _mlp_branch(self, self.norm2, x, hw)
