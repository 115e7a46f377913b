"""Export a LIT backbone to ONNX and check it against PyTorch with onnxruntime.

    python tools/deployment/pytorch2onnx.py ti --checkpoint lit_ti.pth --shape 224 224 --out lit_ti.onnx
    python tools/deployment/pytorch2onnx.py configs/mask_rcnn_lit_s_fpn_1x_coco.py \
        --checkpoint work_dirs/.../epoch_12.pth --shape 800 1216 --out lit_s_det.onnx

TARGET is a LIT arch (the backbone with all four outputs) or a config (its backbone). The checkpoint may
be an official LIT one or an mmlit/OpenMMLab one (converted on the fly; for a config, the weights under
``backbone.``). The graph is exported for one input size (``--shape``), with the deformable token
merging as ONNX GridSample (opset >= 16). ``--verify`` (default on) runs the ONNX model in onnxruntime on a
random input and prints the largest difference to PyTorch.
"""
import argparse
import logging
import os.path as osp
import sys

import torch
from mmengine.logging import MMLogger

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: mmlit_tools

from mmlit_tools.analysis import load_backbone
from mmlit_tools.deploy import DEFAULT_OPSET, export_onnx, onnx_max_error
from mmlit_tools.launch import run_tool


def parse_args():
    parser = argparse.ArgumentParser(description='Export a LIT backbone to ONNX')
    parser.add_argument('target', help='a LIT arch (ti, s, m, b) or a config file')
    parser.add_argument('--checkpoint', help='weights (official LIT or mmlit); random if omitted')
    parser.add_argument('--shape', type=int, nargs='+', default=[224, 224], help='input size: S or H W')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--out', default='lit.onnx', help='output file')
    parser.add_argument('--no-verify', dest='verify', action='store_false',
                        help='skip the onnxruntime comparison')
    parser.add_argument('--atol', type=float, default=1e-4, help='largest difference --verify accepts')
    return parser.parse_args()


@run_tool
def main():
    args = parse_args()
    shape = args.shape * 2 if len(args.shape) == 1 else args.shape
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    backbone = load_backbone(args.target, args.checkpoint)
    inputs = torch.randn(args.batch, 3, *shape)
    names = export_onnx(backbone, inputs, args.out, args.opset)
    print(f'exported {args.out}: input (batch {args.batch}, 3, {shape[0]}, {shape[1]}), outputs {names}, '
          f'opset {args.opset}')
    if args.verify:
        errors = onnx_max_error(args.out, backbone, torch.randn_like(inputs))
        print('onnxruntime vs PyTorch, largest abs difference per output: ' +
              ', '.join(f'{e:.2e}' for e in errors))
        if max(errors) > args.atol:
            raise SystemExit(f'the ONNX outputs differ from PyTorch by more than --atol {args.atol}')


if __name__ == '__main__':
    main()
