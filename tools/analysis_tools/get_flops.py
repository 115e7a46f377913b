"""Parameters and FLOPs of a LIT backbone (by arch) or of a config's whole model.

    python tools/analysis_tools/get_flops.py ti                      # LIT-Ti backbone at 224x224
    python tools/analysis_tools/get_flops.py s --shape 800 1216
    python tools/analysis_tools/get_flops.py configs/mask_rcnn_lit_ti_fpn_1x_coco.py --shape 800 1216

FLOPs are multiply-adds, the convention of the LIT paper (and of DeiT, PVT and Swin): convolutions,
linear layers, the two attention matmuls, norms and the DTM's bilinear sampling. For a whole model the
count covers backbone, neck and heads without post-processing (NMS), as mmdet's get_flops does.
"""
import argparse
import logging
import os.path as osp
import sys

from mmengine.analysis.print_helper import complexity_stats_table
from mmengine.config import DictAction
from mmengine.logging import MMLogger

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: mmlit_tools

from mmlit_tools.flops import analyse_target, count_params
from mmlit_tools.launch import run_tool


def parse_args():
    parser = argparse.ArgumentParser(description='Count the parameters and FLOPs of a LIT model')
    parser.add_argument('target', help='a LIT arch (ti, s, m, b) or a config file')
    parser.add_argument('--shape', type=int, nargs='+', default=[224, 224], help='input size: S or H W')
    parser.add_argument('--table', action='store_true', help='also print the per-module table')
    parser.add_argument('--depth', type=int, default=3, help='module depth of the table')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='config overrides, key=value')
    return parser.parse_args()


@run_tool
def main():
    args = parse_args()
    shape = args.shape * 2 if len(args.shape) == 1 else args.shape
    if len(shape) != 2:
        raise SystemExit(f'--shape takes one or two sizes, got {args.shape}')
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    analyzer, model = analyse_target(args.target, shape, args.cfg_options)
    flops = analyzer.total()
    params = count_params(model)
    line = '=' * 40
    print(f'{line}\nTarget: {args.target}\nInput shape: (1, 3, {shape[0]}, {shape[1]})\n'
          f'FLOPs (multiply-adds): {flops / 1e9:.2f} G\nParams: {params / 1e6:.2f} M\n'
          f'By operator: ' + ', '.join(f'{k} {v / 1e9:.3f} G' for k, v in analyzer.by_operator().items())
          + f'\n{line}')
    if args.table:
        print(complexity_stats_table(analyzer, max_depth=args.depth, show_param_shapes=False))


if __name__ == '__main__':
    main()
