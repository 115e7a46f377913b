"""Evaluate one checkpoint on its config's test set in PyTorch and in the exported runtimes, side by side.

    python tools/deployment/evaluate.py configs/toy/mask_rcnn_lit_ti_fpn_toy_shapes.py epoch_12.pth \
        --backends torch torch-bf16 onnxruntime openvino openvino-bf16 [--onnx model.onnx] [--out results.json]

Every backend sees the same images, one at a time, end to end: the file read and the test pipeline, the
data preprocessor, the network (PyTorch, or the ONNX file in onnxruntime / OpenVINO), and the heads' own
post-processing into predictions (boxes rescaled to the image, masks pasted, segmentation maps resized),
which the config's test evaluator scores. It prints, per backend, every metric with its difference from
PyTorch float32, and the seconds per image: end to end, and in the network alone.

Backends (as ``benchmark.py --backends``): ``torch`` (float32), ``torch-bf16`` (mmlit's bf16 mode, as
``tools/test.py --amp``: backbone and neck under bfloat16 autocast), ``onnxruntime``, ``openvino``
(float32) and ``openvino-bf16`` (OpenVINO's bf16 inference precision). Without ``--onnx`` the model is
exported first, dynamic (one file for every image size; torch >= 2.5), into ``--work-dir``.
"""
import argparse
import json
import logging
import os
import os.path as osp
import sys
import time

import torch
from mmengine.config import DictAction
from mmengine.logging import MMLogger

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: mmlit_tools

from mmlit_tools import deploy
from mmlit_tools.export_graphs import graph_for
from mmlit_tools.launch import check_checkpoints, check_datasets, run_tool
from mmlit_tools.runtimes import BACKENDS, REFERENCE


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint in PyTorch and in ONNX runtimes')
    parser.add_argument('config', help='the config of the model and of its test set')
    parser.add_argument('checkpoint', help='the trained weights')
    parser.add_argument('--backends', nargs='+', choices=list(BACKENDS), default=list(BACKENDS), metavar='BACKEND',
                        help=f'what to evaluate, among {", ".join(BACKENDS)} (default: all); '
                        f'{REFERENCE} (float32) is always evaluated first, as the reference')
    parser.add_argument('--onnx', help='a whole-model file of pytorch2onnx.py for these weights (dynamic, or of '
                        'the size of every test image); exported here when omitted')
    parser.add_argument('--work-dir', default='work_dirs/evaluate', help='where an export is written')
    parser.add_argument('--threads', type=int, help="threads for every backend (default: PyTorch's)")
    parser.add_argument('--out', help='write the metrics and timings of every backend to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    return parser.parse_args(argv)


def _loader_and_evaluator(cfg):
    """The config's test dataloader, one image per batch (a detector's graph takes one image), and a fresh
    test evaluator that knows the dataset."""
    from mmengine.evaluator import Evaluator
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    loader_cfg = cfg.test_dataloader.copy()
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmlit')):
        loader = Runner.build_dataloader(loader_cfg)
        evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    return loader, evaluator


def evaluate(backend: str, model, cfg, onnx_path: str, threads: int) -> dict:
    """``backend``'s metrics on the test set and its seconds per image (``seconds_per_image`` end to end,
    ``network_seconds_per_image`` in the network or runtime alone)."""
    runtime_name, precision = BACKENDS[backend]
    loader, evaluator = _loader_and_evaluator(cfg)
    graph = session = None
    if runtime_name == 'torch':
        if precision == 'bf16':
            from mmlit_tools.amp import autocast_features
            autocast_features(model)
    else:
        graph = graph_for(model).eval()
        session = deploy.Runtime(onnx_path, runtime_name, threads=threads, precision=precision)
    network = 0.
    start = time.perf_counter()
    for data in loader:
        with torch.no_grad():
            data = model.data_preprocessor(data, False)
            inputs, samples = data['inputs'], data['data_samples']
            tick = time.perf_counter()
            if session is None:
                predictions = model(inputs, samples, mode='predict')
                network += time.perf_counter() - tick
            else:
                arrays = [x.numpy() for x in deploy.graph_inputs(graph, inputs, samples)]
                outputs = session(arrays)
                network += time.perf_counter() - tick
                predictions = deploy.to_data_samples(model, graph, outputs, samples)
        evaluator.process(data_samples=predictions, data_batch=data)
    seconds = time.perf_counter() - start
    images = len(loader.dataset)
    metrics = evaluator.evaluate(images)
    return dict(backend=backend, metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
                images=images, seconds_per_image=seconds / images, network_seconds_per_image=network / images)


def report(results) -> str:
    """The results of :func:`evaluate` as lines: metrics and their change from the reference, times."""
    reference = results[0]
    lines = []
    for result in results:
        metrics = ', '.join(
            f'{key} {value:.4f}' + ('' if result is reference else f' ({value - reference["metrics"][key]:+.4f})')
            for key, value in result['metrics'].items())
        speed = reference['seconds_per_image'] / result['seconds_per_image']
        lines.append(f"{result['backend']:>13}: {result['seconds_per_image'] * 1e3:8.1f} ms/image end to end "
                     f"({speed:.2f}x {REFERENCE}), network {result['network_seconds_per_image'] * 1e3:.1f} ms; "
                     f'{metrics}')
    return '\n'.join(lines)


@run_tool
def main(argv=None):
    args = parse_args(argv)
    check_checkpoints(args.checkpoint)
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    backends = [REFERENCE] + [b for b in args.backends if b != REFERENCE]
    _, cfg = deploy.load_model(args.config, args.checkpoint, args.cfg_options)
    check_datasets(cfg, args.config, ('test_dataloader', ))
    onnx_path = args.onnx
    if onnx_path is None and any(BACKENDS[b][0] != 'torch' for b in backends):
        os.makedirs(args.work_dir, exist_ok=True)
        onnx_path = osp.join(args.work_dir, osp.splitext(osp.basename(args.config))[0] + '.onnx')
        model, _ = deploy.load_model(args.config, args.checkpoint, args.cfg_options)
        graph = graph_for(model)
        deploy.pad_inputs(model)
        example = deploy.example_inputs(graph, [32 * n for n in deploy.DYNAMIC_EXAMPLE], batch=2)
        deploy.export_model(graph, example, onnx_path, dynamic=True)
        print(f'exported {onnx_path} (dynamic)', flush=True)
    results = []
    for backend in backends:
        # a fresh model per backend: torch-bf16 wraps its feature extractor in autocast
        model, _ = deploy.load_model(args.config, args.checkpoint, args.cfg_options)
        if onnx_path is not None:
            deploy.pad_inputs(model)  # the images a dynamic file serves, and the same for every backend
        results.append(evaluate(backend, model, cfg, onnx_path, threads))
        print(report(results[-1:] if len(results) == 1 else [results[0], results[-1]]).splitlines()[-1], flush=True)
    print(f'\n{results[0]["images"]} test images, {threads} threads:\n{report(results)}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, threads=threads, results=results), f,
                      indent=2)


if __name__ == '__main__':
    main()
