"""One stage of a LIT-family backbone: deformable token merging, position embedding and blocks."""
from typing import Optional, Sequence, Tuple

import torch
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule, ModuleList

from ..layers import AbsolutePositionEmbedding, DeformableTokenMerging, MLPBlock, MSABlock


class LITStage(BaseModule):
    """One stage of LIT: optional deformable token merging from the previous stage, optional absolute
    position embedding, then ``depth`` MLP-only or global self-attention blocks.

    Tokens travel as (B, N, C) with their grid size (H, W) beside them.

    Args:
        in_channels (int): Channels of the previous stage (ignored without ``downsample``).
        embed_dims (int): Channels of this stage.
        depth (int): Number of blocks.
        num_heads (int): Attention heads (MSA stages only).
        mlp_ratio (float): Hidden/embed ratio of the MLPs.
        use_msa (bool): Global self-attention blocks instead of MLP-only blocks.
        downsample (bool): Start with a deformable token merging (stride 2).
        qkv_bias (bool): Bias in the qkv projections. Defaults to True.
        pos_embed_shape (tuple[int], optional): Token grid of an absolute position embedding.
        num_extra_tokens (int): Slots for extra tokens (class token) in the position embedding.
        rel_pos_shape (tuple[int], optional): Token grid of the relative position bias tables.
        drop_rate (float): Dropout rate (position embedding, MLPs, attention output). Defaults to 0.
        attn_drop_rate (float): Dropout on the attention weights. Defaults to 0.
        drop_path_rates (Sequence[float]): Stochastic depth rate per block; empty for none.
        norm_cfg (dict): Normalisation in the blocks. Defaults to ``dict(type='LN')``.
        dtm_norm_cfg (dict): Normalisation in the deformable token merging. Defaults to ``dict(type='BN')``.
        with_cp (bool): Gradient checkpointing per block.
        hilo (dict, optional): HiLo attention (``window_size``, ``alpha``) instead of global attention in
            the MSA blocks (LITv2). Defaults to None.
        dw_conv (bool): MLPs with a depthwise 3x3 conv (LITv2). Defaults to False.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 depth: int,
                 num_heads: int,
                 mlp_ratio: float,
                 use_msa: bool,
                 downsample: bool,
                 qkv_bias: bool = True,
                 pos_embed_shape: Optional[Sequence[int]] = None,
                 num_extra_tokens: int = 0,
                 rel_pos_shape: Optional[Sequence[int]] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rates: Sequence[float] = (),
                 norm_cfg: dict = dict(type='LN'),
                 dtm_norm_cfg: dict = dict(type='BN'),
                 with_cp: bool = False,
                 hilo: Optional[dict] = None,
                 dw_conv: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.downsample = DeformableTokenMerging(
            in_channels, embed_dims, norm_cfg=dtm_norm_cfg) if downsample else None
        self.pos_embed = AbsolutePositionEmbedding(
            embed_dims, pos_embed_shape, num_extra_tokens,
            drop_rate=drop_rate) if pos_embed_shape is not None else None
        drop_path_rates = list(drop_path_rates) or [0.] * depth
        if use_msa:
            blocks = [
                MSABlock(embed_dims, num_heads, mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                         attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rates[i],
                         rel_pos_shape=rel_pos_shape, norm_cfg=norm_cfg, hilo=hilo, dw_conv=dw_conv)
                for i in range(depth)
            ]
        else:
            blocks = [
                MLPBlock(embed_dims, mlp_ratio, drop_rate=drop_rate, drop_path_rate=drop_path_rates[i],
                         norm_cfg=norm_cfg, dw_conv=dw_conv) for i in range(depth)
            ]
        self.blocks = ModuleList(blocks)

    def forward(self,
                x: torch.Tensor,
                hw: Tuple[int, int],
                extra_tokens: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Run the stage on tokens ``x`` (B, H*W, C) of grid ``hw``.

        ``extra_tokens`` (B, n, C') are put in front of the merged tokens (class token of LIT-Ti).

        Returns:
            tuple: the tokens (B, n + H'*W', C') and their grid (H', W').
        """
        if self.downsample is not None:
            B, _, C = x.shape
            x = self.downsample(x.transpose(1, 2).reshape(B, C, *hw))
            hw = tuple(x.shape[-2:])
            x = x.flatten(2).transpose(1, 2)
        if extra_tokens is not None:
            x = torch.cat((extra_tokens, x), dim=1)
        if self.pos_embed is not None:
            x = self.pos_embed(x, hw)
        for block in self.blocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, hw, use_reentrant=False)
            else:
                x = block(x, hw)
        return x, hw
