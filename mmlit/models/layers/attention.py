"""Global multi-head self-attention of LIT's attention stages, with an optional relative position bias.

The plain reference computation (attention matrix materialised), for figures, tests and benchmarks, is in
:mod:`.plain_attention`."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from mmlit.utils.compat import is_exporting

from ..utils import ParamCache, rel_pos_bias_by_index, rel_pos_bias_from_table, resize_rel_pos_table


class GlobalMultiheadAttention(BaseModule):
    """Global multi-head self-attention over all tokens of a stage.

    Runs through ``F.scaled_dot_product_attention``. With ``rel_pos_shape`` it adds a learnable relative
    position bias: a table for the token grid of the pretraining resolution, resized (bicubic) to the
    (2H-1) x (2W-1) relative offsets of the actual H x W grid, as LIT-S/M/B do.

    The bias is never gathered through an index tensor: it is a strided window of the resized table (see
    :func:`rel_pos_bias_from_table`). In eval mode the resized table is computed once per grid size and
    kept (:class:`ParamCache`), and so is the whole (heads, N, N) bias while it is at most
    ``bias_cache_bytes``. Larger biases (detection resolutions) are never built whole: the queries are
    processed in blocks of rows, each with its own slice of the bias of at most ``bias_block_bytes``, so
    memory stays bounded and the slices stay in cache.

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
        self._table_cache = ParamCache()
        self._bias_cache = ParamCache()

    bias_cache_bytes = 32 * 2**20
    bias_block_bytes = 32 * 2**20

    def init_weights(self) -> None:
        """Initialise as MMEngine does, then the relative position bias table (if any): truncated normal,
        std 0.02."""
        super().init_weights()
        if self.relative_position_bias_table is not None:
            trunc_normal_(self.relative_position_bias_table, std=.02)

    def resized_table(self, hw: Tuple[int, int], dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """The table resized for an H x W grid, as (heads, 2H-1, 2W-1); cached in eval mode."""
        H, W = hw
        table = self.relative_position_bias_table

        def compute():
            resized = resize_rel_pos_table(table, self.table_shape, (2 * H - 1, 2 * W - 1))
            return resized if dtype is None else resized.to(dtype)

        return self._table_cache.get(self, (table, ), (hw, dtype), compute)

    def _bias_bytes(self, hw: Tuple[int, int], table: torch.Tensor) -> int:
        """Bytes of the whole (heads, N, N) bias of an H x W grid (N = H*W) in ``table``'s dtype."""
        N = hw[0] * hw[1]
        return self.num_heads * N * N * table.dtype.itemsize

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """``proj(softmax(QK^T / sqrt(d) + B) V)`` over all tokens, per head; B the relative position bias.

        Without a bias table this is one ``F.scaled_dot_product_attention``. With one, the bias comes
        from :meth:`resized_table`: whole (cached in eval mode) up to ``bias_cache_bytes``, per block of
        query rows beyond, and gathered by index under ONNX / ``torch.export`` export (see the class doc).

        Args:
            x (Tensor): Tokens of shape (B, N, C). With a relative position bias N must be H*W (no extra
                tokens); without one, ``hw`` is unused and extra tokens may be in ``x``.
            hw (tuple[int]): The (H, W) token grid.

        Returns:
            Tensor: The output tokens, (B, N, C).
        """
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        dropout_p = self.attn_drop if self.training else 0.
        if self.relative_position_bias_table is None:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            # The mask goes in 4-D, (1, heads, L, S): CPU SDPA then takes its flash kernel, while a 3-D
            # mask falls back to the math path (5x slower at detection sizes, attention materialised).
            table = self.resized_table(hw, q.dtype)
            total = self._bias_bytes(hw, table)
            if is_exporting():
                # For exporters, the plain formula with the bias gathered by index: TorchScript's ONNX
                # exporter cannot export unfold, and torch.export decomposes a masked SDPA into a graph
                # whose strides it then mistracks (torch 2.14).
                attn = (q * q.shape[-1]**-0.5) @ k.transpose(-2, -1) + rel_pos_bias_by_index(table, hw)
                x = attn.softmax(dim=-1) @ v
            elif total > self.bias_cache_bytes:
                rows = max(1, self.bias_block_bytes // (total // hw[0]))
                x = self._blockwise_attention(q, k, v, table, hw, dropout_p, rows)
            else:
                bias = self._bias_cache.get(self, (self.relative_position_bias_table, ), (hw, q.dtype),
                                            lambda: rel_pos_bias_from_table(table, hw))
                x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None], dropout_p=dropout_p)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))

    @staticmethod
    def _blockwise_attention(q, k, v, table, hw, dropout_p, rows):
        """Attention over blocks of ``rows`` query rows, each with its own slice of the bias.

        Keys and values go in reverse order: each slice is then a plain window of the table, copied once
        (no flip of the large bias)."""
        H, W = hw
        q, k, v = q.contiguous(), k.flip(2), v.flip(2)  # flip copies, so k and v come out contiguous
        # without autograd one buffer serves every block (a fresh large allocation per block costs
        # more in page faults than the copy itself)
        buffer = None if torch.is_grad_enabled() else table.new_empty(table.shape[0] * rows * W * H * W)
        outs = []
        for start in range(0, H, rows):
            stop = min(start + rows, H)
            bias = rel_pos_bias_from_table(table, hw, rows=(start, stop), reversed_keys=True, out=buffer)
            outs.append(F.scaled_dot_product_attention(
                q[:, :, start * W:stop * W], k, v, attn_mask=bias[None], dropout_p=dropout_p))
        return torch.cat(outs, dim=2)

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
