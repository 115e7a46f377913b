"""Deformable token merging (DTM), LIT's learned downsampling between stages."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule

from mmlit.ops import deform_conv2d_k2s2


class DeformableTokenMerging(BaseModule):
    """Deformable token merging (DTM) of LIT.

    Halves the resolution between two stages with a 2x2 stride-2 deformable convolution whose sampling
    offsets are predicted by a 2x2 stride-2 convolution initialised to zero (so it starts as a plain
    patch merging), followed by a normalisation layer (BatchNorm) and an activation (GELU).

    Odd input sizes are zero-padded on the bottom/right, so the output is ``ceil(H / 2) x ceil(W / 2)``.

    Args:
        in_channels (int): Channels of the input feature map.
        out_channels (int): Channels of the merged tokens.
        norm_cfg (dict): Normalisation after the deformable conv. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation after the normalisation. Defaults to ``dict(type='GELU')``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        # holds the weight and bias of the deformable conv; applied to the deformed samples
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=2, stride=2)
        # one (dy, dx) pair per kernel point
        self.conv_offset = nn.Conv2d(in_channels, 8, kernel_size=2, stride=2)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1]
        self.act = build_activation_layer(act_cfg)
        # zero offsets: DTM starts as a plain 2x2 stride-2 token merging
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def get_offset(self, x: torch.Tensor) -> torch.Tensor:
        """Sampling offsets (B, 8, ceil(H/2), ceil(W/2)) predicted for the input (B, C, H, W)."""
        H, W = x.shape[-2:]
        if H % 2 or W % 2:
            x = F.pad(x, (0, W % 2, 0, H % 2))
        return self.conv_offset(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Merge the tokens of ``x`` (B, C, H, W) into (B, C', ceil(H/2), ceil(W/2)): BN and GELU of the
        deformable 2x2 stride-2 convolution at the offsets :meth:`get_offset` predicts."""
        offset = self.get_offset(x)
        merged = deform_conv2d_k2s2(x, offset, self.conv.weight, self.conv.bias)
        # Channels-last memory: the map (B, C, H, W) is then the stage's tokens (B, H*W, C) without a
        # copy, and norm, activation and their gradients (which come back from the tokens) share one
        # layout. (torch 2.1's CPU GELU backward gives garbage in float32 when its incoming gradient
        # has another layout than its input.)
        merged = merged.contiguous(memory_format=torch.channels_last)
        return self.act(self._normalize(merged))

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the norm to the merged map (B, C', H', W').

        A training BatchNorm with running statistics that sees one value per channel (batch 1, 1x1 map)
        has no batch statistics: it normalises with its running statistics instead and leaves them as
        they are.
        """
        norm = self.norm
        if (self.training and isinstance(norm, nn.modules.batchnorm._BatchNorm)
                and x.numel() == x.shape[1] and norm.track_running_stats):
            # The batch statistics of a single value per channel (batch 1 of a 1x1 map) are undefined:
            # normalise such a batch with the running statistics instead of failing.
            return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.,
                                norm.eps)
        return norm(x)

    def extra_repr(self) -> str:
        """Shown by ``repr``: the input and output channels."""
        return f'in_channels={self.in_channels}, out_channels={self.out_channels}'
