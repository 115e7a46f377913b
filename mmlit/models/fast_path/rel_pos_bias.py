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
