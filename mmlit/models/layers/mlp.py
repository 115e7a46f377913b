"""The MLP of the LIT family: two linear layers, with LITv2's depthwise 3x3 conv between them."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule


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
