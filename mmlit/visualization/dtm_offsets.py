"""Where the deformable token merging (DTM) samples: offsets collected from a forward pass, traced from an
output token down to the image pixels it merges, and drawn over the image (as in the LIT paper)."""
from typing import List, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn as nn

# RGB colours, one per chosen position
COLORS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))


@torch.no_grad()
def collect_dtm_offsets(backbone: nn.Module, inputs: torch.Tensor) -> List[torch.Tensor]:
    """The offsets (B, 8, Ho, Wo) each DTM of ``backbone`` predicts for ``inputs``, first stage first.
    Channels ``2k, 2k + 1`` are (dy, dx) of kernel point ``k = 2i + j``, in units of input tokens."""
    offsets, hooks = [], []
    for stage in backbone.stages:
        if stage.downsample is not None:
            hooks.append(stage.downsample.conv_offset.register_forward_hook(
                lambda module, args, out: offsets.append(out.detach())))
    try:
        backbone(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return offsets


def trace_sampling_locations(offsets: Sequence[torch.Tensor], level: int, position: Tuple[int, int],
                             patch_size: int = 4) -> np.ndarray:
    """The image locations the output token ``position`` (row, col in its grid) of DTM ``level`` merges.

    Its four kernel points land (with their offsets) on the grid of the DTM below; each is rounded to the
    nearest token of that grid, whose own four kernel points are followed in turn, down to the first
    DTM. Returns (4 ** (level + 1), 2) image coordinates (y, x) in pixels of the input.
    """
    points = np.array([position], dtype=np.float64)
    for j in range(level, -1, -1):
        off = offsets[j][0].view(4, 2, *offsets[j].shape[-2:]).cpu().double().numpy()
        Ho, Wo = off.shape[-2:]
        rows = np.clip(np.round(points[:, 0]).astype(int), 0, Ho - 1)
        cols = np.clip(np.round(points[:, 1]).astype(int), 0, Wo - 1)
        kernel = np.array([(0, 0), (0, 1), (1, 0), (1, 1)], dtype=np.float64)
        base = 2 * np.stack([rows, cols], 1)[:, None, :] + kernel[None]  # (P, 4, 2) input-grid positions
        points = (base + off[:, :, rows, cols].transpose(2, 0, 1)).reshape(-1, 2)
    return (points + 0.5) * patch_size  # the first DTM's input is the patch grid


def draw_sampling_locations(image: np.ndarray, offsets: Sequence[torch.Tensor],
                            points: Sequence[Tuple[int, int]], patch_size: int = 4,
                            scale: int = 2) -> np.ndarray:
    """One panel per DTM, side by side: for each chosen image point (y, x), the output token of that DTM
    covering it (a cross) and the image locations it merges (dots, one colour per point).

    Returns an RGB image of shape (H * scale + 20, len(offsets) * W * scale, 3).
    """
    H, W = image.shape[:2]
    base = cv2.resize(image, (W * scale, H * scale), interpolation=cv2.INTER_LINEAR)
    panels = []
    for level in range(len(offsets)):
        panel = base.copy()
        stride = patch_size * 2**(level + 1)
        for n, (y, x) in enumerate(points):
            color = COLORS[n % len(COLORS)]
            Ho, Wo = offsets[level].shape[-2:]
            row, col = min(int(y) // stride, Ho - 1), min(int(x) // stride, Wo - 1)
            for sy, sx in trace_sampling_locations(offsets, level, (row, col), patch_size):
                cv2.circle(panel, (int(round(sx * scale)), int(round(sy * scale))), max(1, scale), color, -1,
                           cv2.LINE_AA)
            center = (int(round((col + 0.5) * stride * scale)), int(round((row + 0.5) * stride * scale)))
            cv2.drawMarker(panel, center, color, cv2.MARKER_CROSS, 6 * scale, max(1, scale))
        title = np.full((20, W * scale, 3), 255, np.uint8)
        cv2.putText(title, f'DTM {level + 1} (stride {stride})', (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        panels.append(np.concatenate([title, panel], 0))
    return np.concatenate(panels, 1)
