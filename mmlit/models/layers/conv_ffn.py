"""The MLP of LITv2: a depthwise 3x3 convolution between its two linear layers."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn.bricks.drop import build_dropout
from mmengine.model import BaseModule

from ..fast_path.linear import fused_linear, onednn_linear_usable


class ConvFFN(BaseModule):
    """``fc2(drop(GELU(DWConv3x3(fc1(x)))))``, then dropout; the depthwise convolution mixes each token
    with its 3x3 neighbours on the grid and stands in for position embeddings (LITv2).

    As in mmcv's ``FFN``, ``dropout_layer`` (DropPath) is for the residual branch: the block applies it
    before adding the identity.

    Args:
        embed_dims (int): Token channels.
        feedforward_channels (int): Hidden channels.
        drop_rate (float): Dropout after the activation and after ``fc2``. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate of the branch (``dropout_layer``). Defaults to 0.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, embed_dims: int, feedforward_channels: int, drop_rate: float = 0.,
                 drop_path_rate: float = 0., init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.fc1 = nn.Linear(embed_dims, feedforward_channels)
        self.dwconv = nn.Conv2d(feedforward_channels, feedforward_channels, 3, padding=1,
                                groups=feedforward_channels)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(feedforward_channels, embed_dims)
        self.drop = nn.Dropout(drop_rate)
        self.dropout_layer = build_dropout(dict(type='DropPath', drop_prob=drop_path_rate))

    def init_weights(self) -> None:
        """Initialise as MMEngine does, then the depthwise conv as the official code: normal with std
        sqrt(2 / fan_out), fan_out = 9 (one 3x3 filter per group), zero bias."""
        super().init_weights()
        nn.init.normal_(self.dwconv.weight, 0, (2.0 / 9)**0.5)
        nn.init.zeros_(self.dwconv.bias)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """The MLP of the tokens ``x`` (B, H*W, C) of grid ``hw``; returns (B, H*W, C).

        The tokens are the channels-last memory of the (B, C, H, W) map, so the depthwise conv reads them
        and its output goes back to tokens without a copy either way."""
        x = self._dwconv_tokens(self.fc1(x), hw)
        return self.drop(self.fc2(self.drop(self.act(x))))

    def _dwconv_tokens(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """The depthwise conv of hidden tokens (B, H*W, C'), as tokens."""
        B, N, _ = x.shape
        return self.dwconv(x.view(B, *hw, -1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(B, N, -1)

    def fusable(self, x: torch.Tensor) -> bool:
        """Whether :meth:`forward_fused` may compute this MLP on ``x``: float32 CPU inference
        (:func:`~mmlit.models.fast_path.linear.onednn_linear_usable`) with plain linear layers, both
        dropouts and DropPath in eval mode and without forward hooks (the fused path does not call them)."""
        return onednn_linear_usable(x, self.fc1, self.fc2, skipped=(self, self.drop, self.dropout_layer))

    def forward_fused(self, x: torch.Tensor, hw: Tuple[int, int], identity: torch.Tensor) -> torch.Tensor:
        """``identity + forward(x, hw)`` where :meth:`fusable`: both linear layers through oneDNN, the
        biases and the residual add inside their GEMMs (:mod:`mmlit.models.fast_path.linear`)."""
        x = self._dwconv_tokens(fused_linear(x, self.fc1), hw)
        return fused_linear(self.act(x), self.fc2, residual=identity)
