"""Convert an official LIT checkpoint (github.com/zhuang-group/LIT) to mmlit's layout.

    python tools/model_converters/lit2mmlit.py lit_ti.pth lit_ti_mmlit.pth
    python tools/model_converters/lit2mmlit.py mask_rcnn_lit_ti.pth mask_rcnn_lit_ti_mmlit.pth \\
        --config configs/mask_rcnn_lit_ti_fpn_1x_coco.py

Accepts every official checkpoint: ImageNet classifiers (weights under ``model``), the mmdet 2.11
detectors (RetinaNet, Mask R-CNN) and mmseg 0.13 Semantic FPN models (under ``state_dict``, backbone keys
under ``backbone.``), and bare state dicts; SRC may be a URL. Writes ``dict(state_dict=..., meta=...)``
with ``meta['dataset_meta']`` (classes, palette) for MMEngine's inferencers; optimizer state is dropped.
An ImageNet checkpoint becomes an mmpretrain ``ImageClassifier`` state dict (``backbone.*``,
``head.fc.*``); use it in a detector/segmentor with
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``. A detection/segmentation
checkpoint is a whole model for ``tools/test.py CONFIG DST``. With ``--config`` the converted weights are
loaded strictly into that config's model before anything is written.
"""
import argparse
import os.path as osp
import sys

import torch
from mmengine.runner import CheckpointLoader

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: mmlit_tools

import mmlit  # noqa: F401  (safe loading of mmengine checkpoints)
from mmlit.models.utils import convert_checkpoint, unwrap_state_dict
from mmlit_tools.launch import run_tool


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint: a local path or a URL')
    parser.add_argument('dst', help='where to save the converted checkpoint')
    parser.add_argument('--config', help='check that the converted weights load strictly into this config')
    return parser.parse_args()


def check_strict_load(config: str, state_dict: dict) -> None:
    """Load ``state_dict`` strictly into the model ``config`` builds; exit with what differs if not."""
    from mmlit_tools.analysis import build_target
    model = build_target(config)
    if not any(k.startswith('backbone.') for k in model.state_dict()):
        state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items()}
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:  # shapes differ
        raise SystemExit(f'The converted checkpoint does not fit {config}: {err}\nCheck that the config '
                         'matches the checkpoint (arch, number of classes, neck channels).') from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        hint = ''
        if any(k.startswith(('head.', 'neck.', 'bbox_head.', 'roi_head.', 'decode_head.', 'rpn_head.'))
               for k in missing):
            hint = ('\nThe config has heads this checkpoint lacks: an ImageNet checkpoint initialises only '
                    "the backbone (init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')).")
        raise SystemExit(f'The converted checkpoint does not load strictly into {config}:\n'
                         f'  missing keys ({len(missing)}): {missing[:10]}\n'
                         f'  unexpected keys ({len(unexpected)}): {unexpected[:10]}{hint}')
    print(f'Loads strictly into {config}')


@run_tool
def main():
    args = parse_args()
    dirname = osp.dirname(osp.abspath(args.dst))
    if not osp.isdir(dirname):
        raise SystemExit(f'Output directory {dirname} does not exist; create it first.')
    checkpoint = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
    try:
        converted = convert_checkpoint(checkpoint)
    except (KeyError, ValueError) as err:  # not a LIT checkpoint
        raise SystemExit(f'error: {args.src}: {str(err).strip(chr(39))}') from None
    if args.config:
        check_strict_load(args.config, converted['state_dict'])
    converted['meta'].update(converted_from=args.src, mmlit_version=mmlit.__version__)
    torch.save(converted, args.dst)
    print(f'Converted {len(unwrap_state_dict(checkpoint))} entries ({converted["meta"]["source_layout"]} '
          f'layout) into {len(converted["state_dict"])} mmlit entries: {args.dst}')


if __name__ == '__main__':
    main()
