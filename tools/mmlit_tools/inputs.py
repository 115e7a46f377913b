"""The image and arguments the visualisation tools share."""
import argparse
from typing import Sequence, Tuple

import numpy as np
import torch

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def load_image(path: str, shape: Sequence[int]) -> Tuple[np.ndarray, torch.Tensor]:
    """(RGB uint8 image resized to ``shape`` (H, W), normalised (1, 3, H, W) tensor for the backbone)."""
    import mmcv
    image = mmcv.imread(path, channel_order='rgb')
    if image is None:
        raise FileNotFoundError(f'Cannot read an image at {path}')
    H, W = shape
    image = mmcv.imresize(image, (W, H))
    normalised = mmcv.imnormalize(image, np.array(IMAGENET_MEAN), np.array(IMAGENET_STD), to_rgb=False)
    return image, torch.from_numpy(normalised).permute(2, 0, 1)[None]


def tool_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """The arguments the visualisation tools share: image, target, checkpoint, output and input size."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('img', help='image file')
    parser.add_argument('target', help='config file or LIT arch name')
    parser.add_argument('checkpoint', nargs='?', help='mmlit or official checkpoint (random weights if left out)')
    parser.add_argument('--out', default=default_out, help='PNG to write')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='input size the image is resized to')
    return parser


def parse_pixel(value: str, shape: Sequence[int], flag: str) -> Tuple[float, float]:
    """``'Y,X'`` -> (y, x), inside an image of ``shape`` (H, W); a clear error otherwise."""
    try:
        y, x = (float(v) for v in value.split(','))
    except ValueError:
        raise SystemExit(f'{flag} takes pixels as Y,X (e.g. 112,80), got {value!r}') from None
    if not (0 <= y < shape[0] and 0 <= x < shape[1]):
        raise SystemExit(f'{flag} {value} lies outside the {shape[0]}x{shape[1]} image (--shape).')
    return y, x
