"""Export a LIT model to ONNX and check the file in onnxruntime and OpenVINO against PyTorch.

A whole model, from its config (detector, segmentor or classifier: the network and the post-processing,
NMS and RoIAlign included):

    python tools/deployment/pytorch2onnx.py configs/mask_rcnn_lit_ti_fpn_1x_coco.py epoch_12.pth \
        --out mask_rcnn.onnx --dynamic --verify demo/demo.png

A LIT backbone alone (its four outputs), for one input size, from an arch name:

    python tools/deployment/pytorch2onnx.py ti --checkpoint lit_ti.pth --shape 224 224 --out lit_ti.onnx

``--dynamic`` serves every image size (sides that are multiples of 32) and, for classifiers and segmentors,
every batch size from one file; without it the file serves the size of the first ``--verify`` image (or
``--shape``). ``--verify`` runs the images through the config's test pipeline, PyTorch and the file (in
each ``--backend``), and compares what a user sees: boxes, scores, labels and masks, segmentation maps,
class scores; it fails when they differ beyond ``mmlit_tools.deploy.TOLERANCES``. Whole models need torch
>= 2.5 (its dynamo exporter); on the floor stack use mmdeploy (docs/deployment.md).
"""
import argparse
import logging
import os.path as osp
import sys

import torch
from mmengine.config import DictAction
from mmengine.logging import MMLogger

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: mmlit_tools

from mmlit_tools import deploy
from mmlit_tools.analysis import is_config, load_backbone
from mmlit_tools.export_graphs import graph_for
from mmlit_tools.launch import check_checkpoints, run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export a LIT model to ONNX')
    parser.add_argument('target', help='a config file (the whole model) or a LIT arch (ti, s, m, b, litv2-s, ...: '
                        'the backbone)')
    parser.add_argument('checkpoint', nargs='?', help='weights (random if omitted)')
    parser.add_argument('--checkpoint', dest='checkpoint_opt', help=argparse.SUPPRESS)
    parser.add_argument('--out', default='lit.onnx', help='output file')
    parser.add_argument('--dynamic', action='store_true',
                        help='one file for every image size (multiples of 32) and batch size (but detectors: 1)')
    parser.add_argument('--verify', nargs='+', metavar='IMAGE', default=[],
                        help='compare the predictions of the file and PyTorch on these images')
    parser.add_argument('--backend', nargs='+', choices=deploy.BACKENDS, default=['onnxruntime'],
                        help='runtimes --verify runs the file in')
    parser.add_argument('--shape', type=int, nargs='+', help='input size of a static export without --verify '
                        '(S or H W); for a backbone, default 224')
    parser.add_argument('--batch', type=int, default=1, help='batch of a backbone export')
    parser.add_argument('--opset', type=int, default=deploy.DEFAULT_OPSET)
    parser.add_argument('--atol', type=float, default=1e-4, help="largest difference a backbone's check accepts")
    parser.add_argument('--no-verify', dest='check_backbone', action='store_false',
                        help='skip the onnxruntime comparison of a backbone export')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args(argv)
    args.checkpoint = args.checkpoint or args.checkpoint_opt
    return args


def export_backbone(args) -> None:
    """A LIT backbone at one size, checked in onnxruntime on a random input."""
    shape = args.shape or [224]
    shape = shape * 2 if len(shape) == 1 else shape
    backbone = load_backbone(args.target, args.checkpoint)
    inputs = torch.randn(args.batch, 3, *shape)
    names = deploy.export_onnx(backbone, inputs, args.out, args.opset)
    print(f'exported {args.out}: input (batch {args.batch}, 3, {shape[0]}, {shape[1]}), outputs {names}, '
          f'opset {args.opset}')
    if args.check_backbone:
        errors = deploy.onnx_max_error(args.out, backbone, torch.randn_like(inputs))
        print('onnxruntime vs PyTorch, largest abs difference per output: ' +
              ', '.join(f'{e:.2e}' for e in errors))
        if max(errors) > args.atol:
            raise SystemExit(f'the ONNX outputs differ from PyTorch by more than --atol {args.atol}')


def export_whole(args) -> None:
    """A whole model; each --verify image through PyTorch and the file in each backend."""
    for image in args.verify:
        if not osp.isfile(image):
            raise SystemExit(f'No image at {image}')
    model, cfg = deploy.load_model(args.target, args.checkpoint, args.cfg_options)
    graph = graph_for(model)
    if args.dynamic:
        deploy.pad_inputs(model)
    if args.dynamic:
        example = deploy.example_inputs(graph, [32 * n for n in deploy.DYNAMIC_EXAMPLE], batch=2)
    elif args.verify:
        example = deploy.graph_inputs(graph, *deploy.prepare(model, cfg, args.verify[:1]))
    elif args.shape:
        example = deploy.example_inputs(graph, args.shape * 2 if len(args.shape) == 1 else args.shape)
    else:
        raise SystemExit('a static export takes its size from --verify IMAGE or --shape H W')
    names = deploy.export_model(graph, example, args.out, args.dynamic, opset=args.opset)
    sizes = 'any size (sides multiples of 32)' if args.dynamic else f'size {tuple(example[0].shape[2:])} only'
    print(f'exported {args.out}: inputs {names[0]}, outputs {names[1]}, {sizes}, opset {args.opset}')
    problems = []
    runtimes = [deploy.Runtime(args.out, backend) for backend in args.backend] if args.verify else []
    for image in args.verify:
        inputs, samples = deploy.prepare(model, cfg, [image])
        if args.dynamic:
            deploy.check_size(inputs)
        expected = deploy.reference(model, inputs, samples)
        arrays = [x.numpy() for x in deploy.graph_inputs(graph, inputs, samples)]
        for runtime in runtimes:
            deviations = deploy.compare(expected, deploy.to_data_samples(model, graph, runtime(arrays), samples))
            found = deploy.failures(deviations)
            print(f'{image} ({inputs.shape[2]} x {inputs.shape[3]}), {runtime.backend} vs PyTorch: ' +
                  ', '.join(f'{k} {v:.3g}' for k, v in deviations.items()) + (' FAIL' if found else ' ok'))
            problems += [f'{image}, {runtime.backend}: {p}' for p in found]
    if problems:
        raise SystemExit('the ONNX predictions differ from PyTorch beyond the tolerances:\n' + '\n'.join(problems))


@run_tool
def main(argv=None):
    args = parse_args(argv)
    check_checkpoints(args.checkpoint)
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    if is_config(args.target):
        export_whole(args)
    else:
        if args.verify or args.dynamic:
            raise SystemExit('--verify and --dynamic are for whole models: give a config')
        export_backbone(args)


if __name__ == '__main__':
    main()
