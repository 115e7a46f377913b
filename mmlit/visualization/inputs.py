"""The model and image the visualisation tools look at."""
import argparse
import logging
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import MMLogger

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def load_backbone(target: str, checkpoint: Optional[str] = None) -> nn.Module:
    """The LIT backbone of a config's model (or a bare backbone for an arch name), in eval mode, with the
    weights of ``checkpoint``: an mmlit checkpoint of that model, or an official LIT checkpoint (converted
    on the fly)."""
    from mmengine.runner import CheckpointLoader

    from mmlit.models.utils import lit_to_mmlit
    from mmlit.utils.analysis import build_target
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # no per-parameter initialisation report
    try:
        model = build_target(target)
    finally:
        logger.setLevel(level)
    if checkpoint is not None:
        state_dict = lit_to_mmlit(CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu'))
        if not hasattr(model, 'backbone'):
            state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
        result = model.load_state_dict(state_dict, strict=False)
        backbone_missing = [k for k in result.missing_keys if k.startswith('backbone.') or
                            not hasattr(model, 'backbone')]
        if backbone_missing:
            raise ValueError(f'{checkpoint} does not hold the weights of this backbone: missing '
                             f'{backbone_missing[:5]} ({len(backbone_missing)} keys). Is it the checkpoint of '
                             f'{target}?')
    backbone = getattr(model, 'backbone', model)
    return backbone.eval()


def load_image(path: str, shape: Sequence[int]) -> Tuple[np.ndarray, torch.Tensor]:
    """(RGB uint8 image resized to ``shape`` (H, W), normalised (1, 3, H, W) tensor for the backbone)."""
    import mmcv
    image = mmcv.imread(path, channel_order='rgb')
    if image is None:
        raise FileNotFoundError(f'Cannot read an image at {path}')
    H, W = shape
    image = mmcv.imresize(image, (W, H))
    tensor = torch.from_numpy(image).float().permute(2, 0, 1)[None]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return image, (tensor - mean) / std


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
