"""The relative position bias as windows of its table: no index tensor, no gather."""
from typing import Optional, Tuple

import torch


def rel_pos_bias_from_table(table: torch.Tensor,
                            hw: Tuple[int, int],
                            rows: Optional[Tuple[int, int]] = None,
                            reversed_keys: bool = False,
                            out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Expand a (heads, 2H-1, 2W-1) table into the (heads, H*W, H*W) attention bias of an HxW grid.

    Entry [h, (y1, x1), (y2, x2)] is ``table[h, y1 - y2 + H - 1, x1 - x2 + W - 1]``: no index tensor and
    no gather is needed. With the keys in reverse order (key (a, b) standing for (H-1-a, W-1-b)), the
    entry is ``table[h, y1 + a, x1 + b]``: for each query an HxW window of the table, which ``unfold``
    gives as a strided view. The result is that view made contiguous once (the only copy).

    Args:
        rows (tuple[int], optional): (start, stop): only the queries of grid rows start..stop-1, giving
            (heads, (stop - start) * W, H*W). Defaults to all rows.
        reversed_keys (bool): Give the bias for keys in reverse (flattened) order, as
            :func:`~.attention.fast_attention` uses it; it saves a flip of the whole bias.
        out (Tensor, optional): A 1-D buffer with room for the result, which is written to its start
            (``reversed_keys`` only). Reusing one buffer for many blocks spares the page faults of a
            fresh large allocation per block; not for tensors autograd needs.
    """
    H, W = hw
    start, stop = rows if rows is not None else (0, H)
    windows = table.unfold(1, H, 1).unfold(2, W, 1)  # (heads, H, W, H, W): [h, y1, x1, a, b]
    windows = windows[:, start:stop]
    shape = (table.shape[0], (stop - start) * W, H * W)
    if out is not None and reversed_keys:
        return out[:windows.numel()].view(windows.shape).copy_(windows).view(shape)
    if not reversed_keys:
        # keys back in order: (a, b) -> (H-1-a, W-1-b), on the window dims (the same as flipping the
        # flattened keys, which torch 2.1's inductor miscompiles after this reshape)
        windows = windows.flip(-2, -1)
    return windows.reshape(shape)


def rel_pos_bias_row_windows(table: torch.Tensor, width: int) -> torch.Tensor:
    """The (heads, W, 2H-1, W) tensor from which every grid row's attention bias is a strided view.

    Entry [h, c, dy, x2] is ``table[h, dy, x1 - x2 + W - 1]`` with x1 = W - 1 - c: the bias between a query
    in column x1 and a key in column x2, dy - (H - 1) grid rows apart. The queries' columns go in reverse
    order so that the tensor is one copy of a view of the (flipped, small) table. It holds 2/H of the whole
    (heads, H*W, H*W) bias; :func:`rel_pos_bias_rows_view` reads every row of queries from it without a copy.

    Args:
        table (Tensor): The resized table, (heads, 2H-1, 2W-1).
        width (int): W, the grid's width.
    """
    # [h, dy, c, x2] = flipped[h, dy, c + x2] = table[h, dy, 2W-2 - c - x2] = table[h, dy, x1 - x2 + W-1]
    windows = table.flip(-1).unfold(2, width, 1)
    return windows.permute(0, 2, 1, 3).contiguous()


def rel_pos_bias_rows_view(row_windows: torch.Tensor, height: int) -> torch.Tensor:
    """The bias of every grid row of queries, (H, heads, W, H*W), as a view of ``row_windows``.

    Element [y1, h, c, (a, x2)] is the bias between query (y1, W-1-c) and key (H-1-a, x2): the queries'
    columns and the keys' rows go in reverse order, which makes the key dimension one stride-1 run of
    ``row_windows``.

    Args:
        row_windows (Tensor): :func:`rel_pos_bias_row_windows` of the table.
        height (int): H, the grid's height.
    """
    heads, width = row_windows.shape[:2]
    # [h, c, y1, x2, a] = row_windows[h, c, y1 + a, x2]
    view = row_windows.unfold(2, height, 1).permute(2, 0, 1, 4, 3)  # (H, heads, W, H, W)
    return view.view(height, heads, width, height * width)  # (a, x2) has strides (W, 1): no copy
