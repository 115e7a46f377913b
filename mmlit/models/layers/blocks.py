"""The blocks of the LIT family: the MLP (:class:`Mlp`, two linear layers, with LITv2's depthwise 3x3
conv between them), and the two transformer blocks, MLP-only (:class:`MLPBlock`, early stages) and
self-attention (:class:`MSABlock`, late stages).

LIT's attention is global (:class:`GlobalMultiheadAttention`), LITv2's HiLo (:class:`HiLoAttention`,
``hilo=dict(window_size=..., alpha=...)``); LITv2's MLP has a depthwise conv (``dw_conv=True``).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmengine.model import BaseModule

from .attention import GlobalMultiheadAttention, HiLoAttention


class Mlp(BaseModule):
    """``drop(fc2(drop(GELU(fc1(x)))))``; with ``dw_conv`` (LITv2) a depthwise 3x3 conv over the token
    grid follows ``fc1``, mixing each token with its neighbours in place of position embeddings.

    Version 2 of the module; version 1 (mmlit 0.1.0) was mmcv's ``FFN``, whose keys
    ``layers.0.0.*`` / ``layers.1.*`` load as ``fc1.*`` / ``fc2.*``.

    Args:
        in_features (int): Token channels.
        hidden_features (int): Hidden channels.
        drop (float): Dropout after the activation and after ``fc2``. Defaults to 0.
        dw_conv (bool): The depthwise 3x3 conv of LITv2. Defaults to False.
        init_cfg (dict, optional): Initialisation config.
    """

    _version = 2
    _V1_RENAMES = (('layers.0.0.', 'fc1.'), ('layers.1.', 'fc2.'))

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0., dw_conv: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.dwconv = nn.Conv2d(hidden_features, hidden_features, 3, padding=1,
                                groups=hidden_features) if dw_conv else None
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """The MLP of the tokens ``x`` (B, H*W, C) of grid ``hw`` (used by the depthwise conv only);
        returns (B, H*W, C)."""
        x = self.fc1(x)
        if self.dwconv is not None:
            x = self.dwconv_tokens(x, hw)
        return self.drop(self.fc2(self.drop(self.act(x))))

    def dwconv_tokens(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """The depthwise conv of hidden tokens (B, H*W, C'), as tokens. The tokens are the channels-last
        memory of the (B, C', H, W) map, so neither way needs a copy."""
        B, N, _ = x.shape
        return self.dwconv(x.view(B, *hw, -1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(B, N, -1)

    def init_weights(self) -> None:
        """Initialise as MMEngine does, then the depthwise conv as the official LITv2 code: normal with
        std sqrt(2 / fan_out), fan_out = 9 (one 3x3 filter per group), zero bias."""
        super().init_weights()
        if self.dwconv is not None:
            nn.init.normal_(self.dwconv.weight, 0, (2.0 / 9)**0.5)
            nn.init.zeros_(self.dwconv.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        """Load a version-1 state dict (mmcv's ``FFN`` keys) too: rename its keys first."""
        version = local_metadata.get('version')
        if version is None or version < 2:
            for key in [k for k in state_dict if k.startswith(prefix)]:
                suffix = key[len(prefix):]
                for old, new in self._V1_RENAMES:
                    if suffix.startswith(old):
                        state_dict[prefix + new + suffix[len(old):]] = state_dict.pop(key)
                        break
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def extra_repr(self) -> str:
        """Shown by ``repr``: whether the depthwise conv is there."""
        return f'dw_conv={self.dwconv is not None}'


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
