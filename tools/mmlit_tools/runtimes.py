"""One model in several inference runtimes, for ``benchmark.py --backends``: PyTorch in float32 and
bfloat16, and its ONNX file in onnxruntime and OpenVINO (float32, and bfloat16 where the CPU has it).

Every backend runs the same computation on the same inputs and weights: for an arch target the backbone,
for a config the graph that :mod:`mmlit_tools.deploy` exports (:func:`~mmlit_tools.export_graphs.graph_for`:
image in, detections / logits / scores out; the image pipeline and pasting masks into the image stay
outside for all of them). The parent builds the model once, exports a static ONNX file for the benchmark's
input size and saves the weights and inputs beside it (:func:`prepare_backends`); each backend is then
timed in its own process (:func:`measure_backend`) and its outputs compared with PyTorch float32's
(:func:`deviation`).
"""
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

# name -> (runtime, precision)
BACKENDS = {
    'torch': ('torch', 'fp32'),
    'torch-bf16': ('torch', 'bf16'),
    'onnxruntime': ('onnxruntime', 'fp32'),
    'openvino': ('openvino', 'fp32'),
    'openvino-bf16': ('openvino', 'bf16'),
}
REFERENCE = 'torch'


def _graph(model: nn.Module) -> nn.Module:
    """What every backend runs: the backbone itself, or a whole model's export graph."""
    from mmlit_tools.analysis import task_of
    if task_of(model) == 'backbone':
        return model
    from mmlit_tools.export_graphs import graph_for
    return graph_for(model)


def prepare_backends(build, batch: int, shape: Sequence[int], workdir: str) -> Tuple[str, bool]:
    """Build the model (``build()``), export its graph for ``batch`` x 3 x ``shape`` to
    ``workdir/model.onnx`` and save its weights and the inputs to ``workdir/payload.pt``; returns the
    ONNX path and whether the graph is a detector's (see :func:`deviation`)."""
    from mmlit_tools.deploy import example_inputs, export_model, export_onnx, is_detector
    model = build().eval()
    graph = _graph(model).eval()
    if is_detector(graph) and batch != 1:
        raise SystemExit(f'--backends: a detector graph takes one image at a time; use --batch 1, not {batch}')
    torch.manual_seed(1)
    if graph is model:
        inputs = (torch.randn(batch, 3, *shape), )
    else:
        inputs = example_inputs(graph, shape, batch)
    path = osp.join(workdir, 'model.onnx')
    if graph is model:
        export_onnx(model, inputs[0], path)
    else:
        export_model(graph, inputs, path)
    torch.save(dict(state_dict=model.state_dict(), inputs=inputs), osp.join(workdir, 'payload.pt'))
    return path, is_detector(graph)


def measure_backend(build, backend: str, onnx_path: str, threads: int, warmup: int, repeat: int, time_fn,
                    record_gemms=None) -> dict:
    """Time ``backend`` on the prepared graph and inputs; returns ``times``, the outputs (float32 CPU
    tensors) and, for PyTorch when ``record_gemms`` is given, the step's recorded matrix products."""
    runtime, precision = BACKENDS[backend]
    payload = torch.load(osp.join(osp.dirname(onnx_path), 'payload.pt'), weights_only=False)
    inputs = payload['inputs']
    calls = None
    if runtime == 'torch':
        from contextlib import nullcontext

        from mmlit_tools.amp import autocast_features
        model = build()
        model.load_state_dict(payload['state_dict'])
        model.eval()
        graph = _graph(model).eval()
        bf16 = precision == 'bf16'
        if bf16 and graph is not model:
            autocast_features(model, torch.bfloat16, 'cpu')  # as benchmark.py --dtype bf16, tools/test.py --amp
        ctx = (lambda: torch.autocast('cpu', dtype=torch.bfloat16)) if bf16 and graph is model else nullcontext

        def step():
            with torch.no_grad(), ctx():
                return graph(*inputs)
    else:
        from mmlit_tools.deploy import Runtime
        session = Runtime(onnx_path, runtime, threads=threads, precision=precision)
        arrays = [t.numpy() for t in inputs]

        def step():
            return session(arrays)

    times = time_fn(step, warmup, repeat)
    out = step()
    outputs = out if isinstance(out, (list, tuple)) else [out]
    outputs = [torch.as_tensor(np.asarray(o) if not torch.is_tensor(o) else o).detach().cpu() for o in outputs]
    outputs = [o.float() if o.is_floating_point() else o for o in outputs]
    if runtime == 'torch' and record_gemms is not None:
        calls = record_gemms(step)
    return dict(times=times, outputs=outputs, calls=calls)


def deviation(reference: List[torch.Tensor], got: List[torch.Tensor], detector: bool) -> Dict[str, float]:
    """How far ``got`` is from ``reference`` (PyTorch float32), both a graph's outputs.

    Tensors of the same shapes: the largest absolute difference, the largest reference value and the mean
    relative difference. A detector's outputs (boxes, scores, labels[, mask probabilities]) may keep other
    detections: they are matched as ``pytorch2onnx.py --verify`` matches them
    (:func:`mmlit_tools.deploy.compare`; masks at the head's resolution, thresholded at 0.5).
    """
    if detector:
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        from mmlit_tools.deploy import compare

        def sample(outputs):
            boxes, scores, labels = outputs[:3]
            instances = InstanceData(bboxes=boxes, scores=scores, labels=labels.long())
            if len(outputs) > 3:
                instances.masks = outputs[3] > 0.5
            return DetDataSample(pred_instances=instances)

        return compare([sample(reference)], [sample(got)])
    if len(reference) != len(got) or any(a.shape != b.shape for a, b in zip(reference, got)):
        raise RuntimeError(f'the outputs differ in shape: {[tuple(a.shape) for a in reference]} vs '
                           f'{[tuple(b.shape) for b in got]}')
    diff = max(float((a - b).abs().max()) for a, b in zip(reference, got))
    scale = max(float(a.abs().max()) for a in reference)
    mean_rel = float(sum((a - b).abs().sum() for a, b in zip(reference, got)) /
                     sum(a.abs().sum() for a in reference))
    return dict(max_abs_diff=diff, max_abs=scale, mean_rel_diff=mean_rel)


def describe_deviation(dev: Dict[str, float]) -> str:
    """One phrase for :func:`deviation`'s result."""
    if 'max_abs_diff' in dev:
        return (f"max |diff| {dev['max_abs_diff']:.3g} (largest |output| {dev['max_abs']:.3g}), mean |diff| / "
                f"mean |output| {dev['mean_rel_diff']:.2%}")
    return (f"{dev['detections']:.0f} detections of PyTorch's, {dev['matched']:.1%} matched; score diff "
            f"{dev['score']:.3g}, box diff {dev['box']:.3g} px, least mask IoU {dev['mask_iou']:.3f}")


def attention_flops(calls: Sequence[tuple]) -> float:
    """FLOPs of the fused attention kernels among recorded matrix products (:func:`record_gemms`):
    ``4 B heads Nq Nk d`` each (QK^T and PV)."""
    total = 0.
    for op, args, _ in calls:
        if 'scaled_dot_product' in op.overloadpacket.__name__ and not op.overloadpacket.__name__.endswith('backward'):
            q, k = args[0], args[1]
            *batch, nq, d = q.shape
            total += 4 * float(np.prod(batch)) * nq * k.shape[-2] * d
    return total
