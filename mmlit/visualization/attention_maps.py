"""Where the self-attention of LIT (global) and LITv2 (HiLo) looks: for one query pixel, the attention
weights of every head of every attention block, over the image."""
from typing import Dict, List, Tuple

import cv2
import numpy as np
import torch
import torch.nn as nn

from mmlit.models.layers import GlobalMultiheadAttention, HiLoAttention
from mmlit.visualization.attention_weights import attention_weights, hilo_attention_maps


@torch.no_grad()
def collect_attention_maps(backbone: nn.Module, inputs: torch.Tensor,
                           query: Tuple[int, int]) -> List[Dict]:
    """Attention of the token under image pixel ``query`` (y, x) in every attention block of ``backbone``.

    Returns one dict per block, in forward order: ``stage``, ``block``, ``maps`` (heads, H, W): the
    weights the query gives to every grid token (extra tokens such as a class token left out); for HiLo
    attention also ``hi_heads``, the number of Hi-Fi heads, whose maps come first (window attention), the
    Lo-Fi heads' after (attention to the pooled windows, spread over each window).
    """
    records = []

    def capture(stage_idx, block_idx):

        def hook(module, args):
            x, hw = args
            H, W = hw
            stride = backbone.patch_size * 2**stage_idx
            row, col = min(int(query[0]) // stride, H - 1), min(int(query[1]) // stride, W - 1)
            if isinstance(module, HiLoAttention):
                maps = hilo_attention_maps(module, x[:1], hw, row * W + col)
                records.append(dict(stage=stage_idx, block=block_idx, maps=maps.cpu(), hi_heads=module.hi_heads))
                return
            extra = x.shape[1] - H * W
            rows = torch.tensor([extra + row * W + col])
            weights = attention_weights(module, x[:1], hw, rows)[0, :, 0, extra:]
            records.append(dict(stage=stage_idx, block=block_idx, maps=weights.reshape(-1, H, W).cpu()))

        return hook

    hooks = []
    for i, stage in enumerate(backbone.stages):
        for j, block in enumerate(stage.blocks):
            attn = getattr(block, 'attn', None)
            if isinstance(attn, (GlobalMultiheadAttention, HiLoAttention)):
                hooks.append(attn.register_forward_pre_hook(capture(i, j)))
    if not hooks:
        raise ValueError('This backbone has no attention blocks to show.')
    try:
        backbone(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return records


def draw_attention_grid(image: np.ndarray, records: List[Dict], query: Tuple[int, int],
                        tile: int = 112) -> np.ndarray:
    """A grid of tiles: one row per attention block, one column per head; each tile is the image with the
    head's attention (normalised to its maximum) as a heat map over it and the query as a white ring.

    Returns an RGB image of shape (rows * (tile + 16), max_heads * tile, 3).
    """
    H, W = image.shape[:2]
    th, tw = tile, max(1, round(tile * W / H))
    base = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    qy, qx = int(round(query[0] * th / H)), int(round(query[1] * tw / W))
    columns = max(r['maps'].shape[0] for r in records)
    rows = []
    for record in records:
        label = np.full((16, columns * tw, 3), 255, np.uint8)
        text = f"stage {record['stage'] + 1}, block {record['block'] + 1}"
        if record.get('hi_heads') is not None:
            text += f" (HiLo: {record['hi_heads']} Hi-Fi heads, then {len(record['maps']) - record['hi_heads']} Lo-Fi)"
        cv2.putText(label, text, (3, 12),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        tiles = []
        for head_map in record['maps']:
            heat = head_map / head_map.max().clamp_min(1e-12)
            heat = cv2.resize(heat.numpy().astype(np.float32), (tw, th), interpolation=cv2.INTER_LINEAR)
            colored = cv2.applyColorMap((heat * 255).clip(0, 255).astype(np.uint8), cv2.COLORMAP_JET)
            colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
            out = cv2.addWeighted(base, 0.45, colored, 0.55, 0)
            cv2.circle(out, (qx, qy), 4, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(out)
        tiles += [np.full((th, tw, 3), 255, np.uint8)] * (columns - len(tiles))
        rows.append(np.concatenate([label, np.concatenate(tiles, 1)], 0))
    return np.concatenate(rows, 0)
