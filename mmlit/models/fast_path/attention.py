"""Global attention with a relative position bias, arranged for speed: the fast path of
:class:`~mmlit.models.layers.GlobalMultiheadAttention`.

The same ``softmax(QK^T / sqrt(d) + B) V`` as the module's plain formula, with these changes:

- it runs through ``F.scaled_dot_product_attention`` (flash kernels on CPU and GPU);
- the bias is never gathered through an index tensor: it is a strided window of the resized table
  (:func:`.rel_pos_bias_from_table`); in eval mode the resized table is computed once per grid size;
- biases over :data:`WHOLE_BIAS_BYTES` (detection resolutions) are never built whole. For float32 inference
  on CPU, every grid row of queries reads its bias as a strided view of one small tensor
  (:func:`row_batched_attention`): one flash call, no bias copied. Elsewhere (bf16 / fp16, GPUs, torch without
  the CPU flash kernel's mask) the queries go in blocks of rows, each with its own slice of the bias of at most
  :data:`BIAS_BLOCK_BYTES`, so memory stays bounded and the slices stay in cache;
- training on the CPU with such a bias (gradients wanted, not under ``torch.compile``) runs
  :func:`~.rel_pos_attention.rel_pos_attention`: nothing N x N kept for the backward;
- in float32 CPU inference the projections run through oneDNN (:mod:`.linear`).

Exporters get the plain formula.
"""
from typing import Tuple

import torch
import torch.nn.functional as F

from mmlit.utils.compat import cpu_flash_takes_mask, is_exporting, is_tracing

from ..layers import GlobalMultiheadAttention
from ..utils import resize_rel_pos_table
from .linear import fused_linear, onednn_linear_usable
from .param_cache import cached
from .rel_pos_attention import accumulation_dtype, rel_pos_attention
from .rel_pos_bias import rel_pos_bias_from_table, rel_pos_bias_row_windows, rel_pos_bias_rows_view

# The whole (heads, N, N) bias is built up to this size, in bytes.
WHOLE_BIAS_BYTES = 32 * 2**20
# Beyond it, the queries go in blocks of rows whose bias slice is at most this size, in bytes.
BIAS_BLOCK_BYTES = 32 * 2**20
# The row-batched path runs while its windows (:func:`.rel_pos_bias_row_windows`) take at most this many bytes.
BIAS_ROW_WINDOWS_BYTES = 64 * 2**20


class FastGlobalMultiheadAttention(GlobalMultiheadAttention):
    """:class:`~mmlit.models.layers.GlobalMultiheadAttention` through :func:`fast_attention`, with its
    projections through oneDNN in float32 CPU inference; the plain forward under exporters."""

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """The plain forward's result, faster; see there."""
        if is_exporting():
            return super().forward(x, hw)
        B, N, C = x.shape
        onednn = not self.training and onednn_linear_usable(x, self.qkv, self.proj)
        qkv = fused_linear(x, self.qkv) if onednn else self.qkv(x)
        q, k, v = qkv.view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        x = fast_attention(self, q, k, v, hw).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(fused_linear(x, self.proj) if onednn else self.proj(x))


def resized_table(attn, hw: Tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """The bias table of ``attn`` resized for an H x W grid, (heads, 2H-1, 2W-1); cached in eval mode."""
    H, W = hw
    table = attn.relative_position_bias_table
    return cached(attn, 'table', (table, ), (tuple(hw), dtype),
                  lambda: resize_rel_pos_table(table, attn.table_shape, (2 * H - 1, 2 * W - 1)).to(dtype))


def fast_attention(attn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """``softmax(QK^T / sqrt(d) + B) V`` of the module ``attn`` (a ``GlobalMultiheadAttention``).

    Args:
        attn (GlobalMultiheadAttention): Gives the bias table, the dropout rate and the training flag.
        q, k, v (Tensor): (B, heads, N, d) each.
        hw (tuple[int]): The (H, W) token grid (N = H*W with a bias table).

    Returns:
        Tensor: (B, heads, N, d).
    """
    dropout_p = attn.attn_drop if attn.training else 0.
    if attn.relative_position_bias_table is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    N = hw[0] * hw[1]
    wants_grad = torch.is_grad_enabled() and (q.requires_grad or attn.relative_position_bias_table.requires_grad)
    eager_cpu_training = q.device.type == 'cpu' and wants_grad and not (is_tracing() or torch.jit.is_tracing())
    # the size test last: under torch.export it would pin N to the example's
    if eager_cpu_training and attn.num_heads * N * N * 4 > WHOLE_BIAS_BYTES:
        # training on CPU at detection sizes: blocks of queries, keeping nothing N x N for the backward; a
        # half-precision attention gets its table (scores, statistics, the table's gradient) in float32.
        # (torch.compile and torch.jit.trace, as the FLOP counters use it, take the SDPA paths below.)
        table = resized_table(attn, hw, accumulation_dtype(q.dtype))
        return rel_pos_attention(q, k, v, table, hw, attn.scale, dropout_p)
    table = resized_table(attn, hw, q.dtype)
    total = table.shape[0] * N * N * table.dtype.itemsize
    if total > WHOLE_BIAS_BYTES:
        windows_bytes = table.shape[0] * hw[1] * table.shape[1] * hw[1] * table.dtype.itemsize
        # float32 only: in half precision the flash kernel packs a head's keys and values for its matrix
        # products, which the row-batched call repeats for every grid row; blocks of rows pack them per block
        if (q.device.type == 'cpu' and q.dtype == torch.float32 and not torch.is_grad_enabled() and dropout_p == 0
                and windows_bytes <= BIAS_ROW_WINDOWS_BYTES and cpu_flash_takes_mask()):
            return row_batched_attention(q, k, v, table, hw)
        rows = max(1, BIAS_BLOCK_BYTES // (total // hw[0]))
        return blockwise_attention(q, k, v, table, hw, dropout_p, rows)
    bias = rel_pos_bias_from_table(table, hw)
    # The mask goes in 4-D, (1, heads, L, S): CPU SDPA then takes its flash kernel, while a 3-D mask
    # falls back to the math path (5x slower at detection sizes, attention materialised).
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None], dropout_p=dropout_p)


def blockwise_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor,
                        hw: Tuple[int, int], dropout_p: float, rows: int) -> torch.Tensor:
    """Attention over blocks of ``rows`` grid rows of queries, each with its own slice of the bias.

    Keys and values go in reverse order: each slice is then a plain window of the table, copied once
    (no flip of the large bias).

    Args:
        q, k, v (Tensor): (B, heads, H*W, d) each.
        table (Tensor): The resized table, (heads, 2H-1, 2W-1).
        hw (tuple[int]): The (H, W) token grid.
        dropout_p (float): Dropout on the attention weights.
        rows (int): Grid rows of queries per block.

    Returns:
        Tensor: (B, heads, H*W, d).
    """
    H, W = hw
    q, k, v = q.contiguous(), k.flip(2), v.flip(2)  # flip copies, so k and v come out contiguous
    # without autograd one buffer serves every block (a fresh large allocation per block costs more in
    # page faults than the copy itself)
    buffer = None if torch.is_grad_enabled() else table.new_empty(table.shape[0] * rows * W * H * W)
    outs = []
    for start in range(0, H, rows):
        stop = min(start + rows, H)
        bias = rel_pos_bias_from_table(table, hw, rows=(start, stop), reversed_keys=True, out=buffer)
        outs.append(F.scaled_dot_product_attention(
            q[:, :, start * W:stop * W], k, v, attn_mask=bias[None], dropout_p=dropout_p))
    return torch.cat(outs, dim=2)


def row_batched_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor,
                          hw: Tuple[int, int]) -> torch.Tensor:
    """Attention with each grid row of queries as its own attention "head", in one flash call, for float32
    inference.

    The bias of query row y1 is a strided view of :func:`.rel_pos_bias_row_windows` (2/H of the whole bias,
    built once), so no bias is copied per row. The heads go in the batch dimension and the rows of queries
    in the heads dimension, sharing their head's keys and values (stride 0). The keys' rows and the queries'
    columns go in reverse order, as the view wants them. The kernel then takes one head's rows one after
    another, while that head's keys, values and bias windows are in cache (10% faster than rows outside
    heads). The CPU flash kernel reads the mask by its strides. Not for autograd: its backward would give
    each row its own copy of the keys' gradients.

    Args:
        q, k, v (Tensor): (B, heads, H*W, d) each.
        table (Tensor): The resized table, (heads, 2H-1, 2W-1).
        hw (tuple[int]): The (H, W) token grid.

    Returns:
        Tensor: (B, heads, H*W, d).
    """
    H, W = hw
    mask = rel_pos_bias_rows_view(rel_pos_bias_row_windows(table, W), H).transpose(0, 1)  # (heads, H, W, H*W)
    k, v = (t.unflatten(2, (H, W)).flip(2).flatten(2, 3) for t in (k, v))  # key rows in reverse
    outs = []
    for i in range(q.shape[0]):  # images one by one (the mask cannot broadcast over images and heads at once)
        rows = q[i].unflatten(1, (H, W)).flip(2)  # (heads, H, W, d), columns in reverse
        keys, values = (t[i, :, None].expand(-1, H, -1, -1) for t in (k, v))  # (heads, H, H*W, d)
        out = F.scaled_dot_product_attention(rows, keys, values, attn_mask=mask)
        outs.append(out.flip(2).flatten(1, 2))
    return torch.stack(outs)
