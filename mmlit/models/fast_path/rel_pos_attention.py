"""Training attention with a relative position bias that keeps no (heads, N, N) tensor for the backward.

``softmax(Q K^T / sqrt(d) + B) V`` with B[h, (y1, x1), (y2, x2)] = T[h, y1 - y2 + H - 1, x1 - x2 + W - 1]
for a (heads, 2H-1, 2W-1) table T, computed in blocks of query rows as flash attention does: the forward
keeps the output and the log-sum-exp of each query's scores; the backward recomputes each block's
probabilities and gives dQ, dK, dV and dT. The bias is a Toeplitz function of T, so dT is each block's
dS summed by relative offset: a skewed view of the block times a row of ones, then a skewed sum of that
small result (see :func:`_reduce_by_offset`).

The keys go in a fixed order throughout: columns outermost, both axes reversed. Key (b, a) stands for
(y2, x2) = (H-1-a, W-1-b), so the bias is B[h, (y1, x1), (b, a)] = T[h, y1 + a, x1 + b]: windows of
the table, and sums along anti-diagonals in the backward.
"""
from typing import NamedTuple, Optional, Tuple

import torch

# Bytes of one block of scores, (heads, rows * W, N) of one image; its heads and rows follow from it.
BLOCK_BYTES = 8 * 2**20


def rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor, hw: Tuple[int, int],
                      scale: float, dropout_p: float = 0., seed: Optional[int] = None,
                      block_bytes: int = BLOCK_BYTES) -> torch.Tensor:
    """``softmax((q * scale) k^T + B) v`` with the bias B of ``table``, for autograd, in bounded memory.

    Args:
        q, k, v (Tensor): (B, heads, H*W, d) each.
        table (Tensor): The resized bias table, (heads, 2H-1, 2W-1). Under half-precision inputs give it
            in float32: the scores, the softmax statistics and the table's gradient are then float32.
        hw (tuple[int]): The (H, W) token grid.
        scale (float): Multiplies ``q`` before the product.
        dropout_p (float): Dropout on the attention weights. Defaults to 0.
        seed (int, optional): Seed of the dropout masks (drawn from torch's default generator when None),
            which the backward draws again.
        block_bytes (int): Bytes of one block of scores. Defaults to :data:`BLOCK_BYTES`.

    Returns:
        Tensor: (B, heads, H*W, d), in ``q``'s dtype.
    """
    H, W = hw
    if q.shape[2] != H * W:
        raise ValueError(f'{q.shape[2]} tokens do not form the {H}x{W} grid of the relative position bias')
    if dropout_p > 0 and seed is None:
        seed = int(torch.randint(2**62, (), device='cpu'))
    return _RelPosAttention.apply(q, k, v, table, tuple(hw), scale, float(dropout_p), seed, block_bytes)


def _keys_by_column(t: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """Tokens (B, heads, H*W, d) of a grid in the keys' order: columns outermost, both axes reversed."""
    H, W = hw
    return t.unflatten(2, (H, W)).flip(2, 3).transpose(2, 3).flatten(2, 3)


def _keys_by_row(t: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`_keys_by_column`."""
    H, W = hw
    return t.unflatten(2, (W, H)).transpose(2, 3).flip(2, 3).flatten(2, 3)


def _bias_rows(table_t: torch.Tensor, hw: Tuple[int, int], start: int, stop: int) -> torch.Tensor:
    """The bias of query rows start..stop-1 for keys by column as a view of the transposed table
    (heads, 2W-1, 2H-1): (heads, stop - start, W, W, H), entry [h, y1, x1, b, a] = T[h, y1 + a, x1 + b]."""
    H, W = hw
    windows = table_t.unfold(2, H, 1).unfold(1, W, 1)  # (heads, W, H, H, W): [x1, y1, a, b]
    return windows.permute(0, 2, 1, 4, 3)[:, start:stop]


def _reduce_by_offset(padded: torch.Tensor, hw: Tuple[int, int], rows: int) -> torch.Tensor:
    """Sum a block's dS over the query-key pairs of each relative offset.

    Args:
        padded (Tensor): (heads, rows * W, 2 * H*W) whose first H*W columns hold dS (keys by column) and
            whose other columns are zeros.
        hw (tuple[int]): The (H, W) token grid.
        rows (int): Query rows in the block.

    Returns:
        Tensor: (heads, 2W-1, H + rows - 1), entry [h, c, r] the sum of dS over pairs with x1 + b = c and
        (y1 - start) + a = r.
    """
    H, W = hw
    heads, _, row_len = padded.shape
    span = row_len - H
    # In one query row y1, element (x1, b, a) lies at x1 * 2HW + b * H + a. Read as W rows of
    # span = (2W-1) * H consecutive elements, row x1 starting x1 * H before query x1's own, column c * H + a of
    # row x1 holds dS[x1, c - x1, a] where 0 <= c - x1 < W and a zero of the padding otherwise (for c < x1,
    # of the previous query's padding). The sum over x1 is then one product with a row of ones.
    skewed = padded.as_strided((heads * rows, W, span), (W * row_len, span, 1), padded.storage_offset())
    by_column = torch.matmul(padded.new_ones(1, W), skewed)  # (heads * rows, 1, span): [c, a]
    by_column = by_column.view(heads, rows, 2 * W - 1, H).transpose(1, 2)  # (heads, 2W-1, rows, H): [c, y1, a]
    # The same along the rows, on this small tensor: pad a to H + rows, read with row stride H + rows - 1.
    by_column = torch.nn.functional.pad(by_column, (0, rows)).flatten(2)[..., :rows * (H + rows - 1)]
    return by_column.unflatten(2, (rows, H + rows - 1)).sum(2)


def _dropout_mask(generator: torch.Generator, shape, keep: float, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
    """A block's dropout mask: 1 / keep with probability ``keep``, else 0 (drawn again by the backward)."""
    return torch.empty(shape, dtype=dtype, device=device).bernoulli_(keep, generator=generator).div_(keep)


def _block_shape(heads: int, hw: Tuple[int, int], itemsize: int, block_bytes: int) -> Tuple[int, int]:
    """(heads, rows) per block: as many grid rows of queries of one head as ``block_bytes`` of scores hold
    (longer products for the keys' and values' gradients), then as many heads of all rows; at least one
    row of one head."""
    H, W = hw
    row_bytes = W * H * W * itemsize  # one head, one grid row of queries
    rows = max(1, min(H, block_bytes // row_bytes))
    if rows < H:
        return 1, rows
    return max(1, min(heads, block_bytes // (H * row_bytes))), H


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision inputs (scores, statistics, the table's gradient), else the inputs' dtype."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class _RelPosAttention(torch.autograd.Function):
    """The autograd function of :func:`rel_pos_attention`."""

    @staticmethod
    def forward(ctx, q, k, v, table, hw, scale, dropout_p, seed, block_bytes):
        with torch.autocast(q.device.type, enabled=False):
            blocks = _Blocks(q, k, v, table, hw, scale, dropout_p, seed, block_bytes)
            out = q.new_empty(blocks.qs.shape)
            lse = q.new_empty(blocks.qs.shape[:2] + (1, ), dtype=blocks.acc)
            for block, scores in blocks.blocks():
                # exp(S - max) in place; the output divided by the row sums, not the probabilities
                top = scores.amax(dim=-1, keepdim=True)
                total = scores.sub_(top).exp_().sum(dim=-1, keepdim=True)
                lse[block.rows] = top + total.log()  # the log-sum-exp of each query's scores, for the backward
                unnormalised = blocks.dropped(scores).to(q.dtype)
                out[block.rows] = torch.bmm(unnormalised, blocks.vc[block.bh]).div_(total.to(q.dtype))
        ctx.save_for_backward(q, k, v, table, out, lse)
        ctx.hw, ctx.scale, ctx.dropout_p, ctx.seed, ctx.block_bytes = hw, scale, dropout_p, seed, block_bytes
        return out.view(q.shape)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, table, out, lse = ctx.saved_tensors
        hw = ctx.hw
        H = hw[0]
        with torch.autocast(q.device.type, enabled=False):
            blocks = _Blocks(q, k, v, table, hw, ctx.scale, ctx.dropout_p, ctx.seed, ctx.block_bytes)
            dtype, acc, qs = blocks.dtype, blocks.acc, blocks.qs
            BH, N, d = qs.shape
            grad_out = grad_out.to(dtype).reshape(BH, N, d)
            # D = rowsum(dP * P) = rowsum(dO * O), with or without dropout
            delta = (grad_out.to(acc) * out.to(acc)).sum(-1, keepdim=True)
            dq = torch.empty_like(qs)
            # the keys' and values' gradients transposed, (B * heads, d, N): their products run fastest so
            dk_t, dv_t = (qs.new_zeros(BH, d, N, dtype=acc) for _ in range(2))
            dtable_t = torch.zeros_like(blocks.table_t)
            # dS goes into the first N columns of rows of 2N whose other columns stay zero (_reduce_by_offset)
            padded = qs.new_zeros(blocks.block_numel * 2, dtype=acc)
            dprobs_buffer = qs.new_empty(blocks.block_numel, dtype=acc)
            # without dropout in full precision, dP - D is one product: [dO, -D] @ [V, 1]^T
            fused = acc == dtype and ctx.dropout_p == 0
            values_t = blocks.vc.transpose(1, 2)
            if fused:
                dout_delta = torch.cat([grad_out, -delta], dim=-1)
                values_t = torch.cat([values_t, values_t.new_ones(BH, 1, N)], dim=1)
            for block, scores in blocks.blocks(lse):
                g, n = scores.shape[:2]
                probs = scores.exp_()
                dout = grad_out[block.rows]
                dprobs = dprobs_buffer[:g * n * N].view(g, n, N)
                padded_block = padded[:g * n * 2 * N].view(g, n, 2 * N)
                if fused:
                    torch.bmm(dout_delta[block.rows], values_t[block.bh], out=dprobs)  # dP - D
                    _accumulate(dv_t[block.bh], dout.transpose(1, 2), probs, dtype)
                    dscores = torch.mul(dprobs, probs, out=padded_block[..., :N])
                else:
                    dprobs.copy_(torch.bmm(dout, values_t[block.bh]))
                    mask = blocks.mask(probs)
                    _accumulate(dv_t[block.bh], dout.transpose(1, 2), probs if mask is None else probs * mask, dtype)
                    if mask is not None:
                        dprobs.mul_(mask)
                    dscores = torch.mul(dprobs.sub_(delta[block.rows]), probs, out=padded_block[..., :N])
                if acc != dtype:
                    dscores = dscores.to(dtype)
                dq[block.rows] = torch.bmm(dscores, blocks.kc[block.bh]).mul_(ctx.scale)
                _accumulate(dk_t[block.bh], qs[block.rows].transpose(1, 2), dscores, dtype)
                dtable_t[block.heads, :, block.start:block.stop + H - 1] += _reduce_by_offset(
                    padded_block, hw, block.stop - block.start)
            dk, dv = (_keys_by_row(t.transpose(1, 2).to(dtype).view(q.shape), hw) for t in (dk_t, dv_t))
            dtable = dtable_t.transpose(1, 2).to(table.dtype)
        return dq.view(q.shape), dk, dv, dtable, None, None, None, None, None


def _accumulate(total: torch.Tensor, a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> None:
    """``total += a @ b`` (batched), the product in ``dtype`` and the sum in ``total``'s dtype."""
    if total.dtype == dtype:
        total.baddbmm_(a, b)
    else:
        total += torch.bmm(a, b.to(dtype))


class _Block(NamedTuple):
    """Where a block lies: ``bh`` and ``heads`` slice the (image, head) pairs and the heads, ``rows`` indexes
    its queries in (B * heads, N, ...) tensors; its queries are grid rows ``start`` to ``stop - 1``."""
    bh: slice
    heads: slice
    rows: Tuple[slice, slice]
    start: int
    stop: int


class _Blocks:
    """What the forward and the backward share: the inputs arranged for the blocks, and the blocks'
    scores (computed again by the backward) and dropout masks (drawn again), in the same order.

    :meth:`blocks` gives (block, scores): the scores (heads, queries, N) of the block's heads and queries,
    bias included, in the accumulation dtype, in one buffer that the next block overwrites.
    """

    def __init__(self, q, k, v, table, hw, scale, dropout_p, seed, block_bytes):
        B, heads, N, d = q.shape
        self.hw, self.keep = hw, 1 - dropout_p
        self.dtype, self.acc = q.dtype, accumulation_dtype(q.dtype)
        self.group, self.rows = _block_shape(heads, hw, torch.finfo(self.acc).bits // 8, block_bytes)
        self.block_numel = self.group * self.rows * hw[1] * N
        self.table_t = table.to(self.acc).transpose(1, 2).contiguous()
        self.qs = (q * scale).reshape(B * heads, N, d)
        self.kc, self.vc = (_keys_by_column(t, hw).view(B * heads, N, d) for t in (k, v))
        self.generator = _generator(seed, q.device) if dropout_p > 0 else None
        self.images, self.heads = B, heads

    def blocks(self, lse: Optional[torch.Tensor] = None):
        """Iterate over the blocks, giving (block, scores); with ``lse`` (B * heads, N, 1), the scores less
        each query's log-sum-exp."""
        H, W = self.hw
        BH, N, d = self.qs.shape
        buffer = self.qs.new_empty(self.block_numel, dtype=self.acc)
        keys_t = self.kc.transpose(1, 2)
        for image in range(self.images):
            for h0 in range(0, self.heads, self.group):
                h1 = min(h0 + self.group, self.heads)
                bh = slice(image * self.heads + h0, image * self.heads + h1)
                for start in range(0, H, self.rows):
                    stop = min(start + self.rows, H)
                    block = _Block(bh, slice(h0, h1), (bh, slice(start * W, stop * W)), start, stop)
                    n = (stop - start) * W
                    scores = buffer[:(h1 - h0) * n * N].view(h1 - h0, n, N)
                    windows = _bias_rows(self.table_t[h0:h1], self.hw, start, stop)
                    if lse is None:
                        scores.view(h1 - h0, stop - start, W, W, H).copy_(windows)
                    else:  # the backward's scores less their log-sum-exp: exp_() then gives the probabilities
                        torch.sub(windows, lse[block.rows].view(h1 - h0, stop - start, W, 1, 1),
                                  out=scores.view(h1 - h0, stop - start, W, W, H))
                    if self.acc == self.dtype:
                        scores.baddbmm_(self.qs[block.rows], keys_t[bh])
                    else:  # a half-precision product, the sum in float32
                        scores.add_(torch.bmm(self.qs[block.rows], keys_t[bh]))
                    yield block, scores

    def mask(self, probs: torch.Tensor) -> Optional[torch.Tensor]:
        """The dropout mask of the next block (None without dropout)."""
        if self.generator is None:
            return None
        return _dropout_mask(self.generator, probs.shape, self.keep, self.acc, probs.device)

    def dropped(self, probs: torch.Tensor) -> torch.Tensor:
        """``probs`` with the next block's dropout mask applied (in place)."""
        mask = self.mask(probs)
        return probs if mask is None else probs.mul_(mask)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator of ``device`` seeded with ``seed``: the forward and the backward draw the same masks."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
