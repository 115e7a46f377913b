"""Convert an official LIT checkpoint (github.com/zhuang-group/LIT) to mmlit's layout.

    python tools/model_converters/lit2mmlit.py lit_ti.pth lit_ti_mmlit.pth

Accepts ImageNet checkpoints (weights under ``model``), mmdet/mmseg checkpoints (under ``state_dict``,
backbone keys under ``backbone.``) and bare state dicts. Writes ``dict(state_dict=..., meta=...)``:
an ImageNet checkpoint becomes an mmpretrain ``ImageClassifier`` state dict (``backbone.*``,
``head.fc.*``); use it in a detector/segmentor with
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``.
"""
import argparse
import os.path as osp

import torch
from mmengine.runner import CheckpointLoader

import mmlit  # noqa: F401  (safe loading of mmengine checkpoints)
from mmlit.models.utils import detect_layout, lit_to_mmlit, unwrap_state_dict


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint: a local path or a URL')
    parser.add_argument('dst', help='where to save the converted checkpoint')
    return parser.parse_args()


def main():
    args = parse_args()
    checkpoint = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
    source = unwrap_state_dict(checkpoint)
    backbone_keys = [k[len('backbone.'):] if k.startswith('backbone.') else k for k in source]
    layout = detect_layout(backbone_keys)
    state_dict = lit_to_mmlit(checkpoint)
    dirname = osp.dirname(osp.abspath(args.dst))
    if not osp.isdir(dirname):
        raise SystemExit(f'Output directory {dirname} does not exist; create it first.')
    torch.save(dict(state_dict=state_dict, meta=dict(converted_from=args.src, source_layout=layout,
                                                     mmlit_version=mmlit.__version__)), args.dst)
    print(f'Converted {len(source)} entries ({layout} layout) into {len(state_dict)} mmlit entries: '
          f'{args.dst}')


if __name__ == '__main__':
    main()
