"""How tokens enter a stage of the LIT family: deformable token merging (:class:`DeformableTokenMerging`,
LIT's learned downsampling between stages), and LIT-Ti's learnable absolute position embedding
(:class:`AbsolutePositionEmbedding`), resized to the input's token grid."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from mmlit.ops import deform_conv2d_k2s2

from ..utils import resize_pos_embed


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
