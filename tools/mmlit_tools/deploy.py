"""Exporting LIT models to ONNX and running the files in onnxruntime and OpenVINO.

- :func:`export_onnx`: a LIT backbone, for one input size.
- :func:`export_model`: a whole model from its config (:mod:`mmlit_tools.export_graphs`), for one size or,
  with ``dynamic``, any size (multiples of the model's size divisor; any batch but for detectors).
- :class:`Runtime`: an exported file in onnxruntime or OpenVINO.
- :func:`prepare`, :func:`to_data_samples`, :func:`compare`: an image through the config's test pipeline
  and data preprocessor, the file's outputs back into OpenMMLab data samples (the heads' own code pastes
  masks and rescales boxes), and the deviations of those predictions from PyTorch's, against
  :data:`TOLERANCES`.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from mmlit.utils.compat import onnx_has_dynamo_exporter

# the dynamo exporter of torch >= 2.6 starts at opset 18, the TorchScript exporter of older torch goes up to 17
DEFAULT_OPSET = 18 if onnx_has_dynamo_exporter() else 17

# What --verify accepts, per task: deviations of the ONNX model's predictions from PyTorch's in float32.
TOLERANCES = dict(
    score=1e-3,  # class scores and detection scores, absolute
    box=0.5,  # box corners, pixels of the original image
    mask_iou=0.95,  # the least IoU of a matched detection's mask with PyTorch's
    matched=0.99,  # the share of PyTorch's detections (above the last score's margin) found again
    pixels=0.999,  # the share of a segmentation map's pixels with the same class
)
BACKENDS = ('onnxruntime', 'openvino')


def export_onnx(model: nn.Module, inputs: torch.Tensor, path: str, opset: int = DEFAULT_OPSET) -> List[str]:
    """Export a LIT backbone ``model`` in eval mode for inputs of ``inputs``'s shape (static: the position
    embeddings and bias tables are resized for that grid). Returns the output names.

    Uses torch's dynamo exporter where ``torch.onnx.export`` has one, else its TorchScript exporter
    (torch < 2.5); both give the same graph semantics, checked by :func:`onnx_max_error`.
    """
    model = model.eval()
    names = [f'out{i}' for i in range(len(model.out_indices))]
    kwargs = dict(opset_version=opset, input_names=['input'], output_names=names, verbose=False)
    if onnx_has_dynamo_exporter():
        # one self-contained file: every LIT is far below ONNX's 2 GB limit
        kwargs.update(dynamo=True, external_data=False)
    with torch.no_grad():
        torch.onnx.export(model, (inputs, ), path, **kwargs)
    return names


def onnx_max_error(path: str, model: nn.Module, inputs: torch.Tensor) -> Sequence[float]:
    """Largest absolute difference between onnxruntime's outputs and the eager model's, per output."""
    outs = Runtime(path)([inputs.cpu().numpy()])
    with torch.no_grad():
        refs = model.eval()(inputs)
    refs = refs if isinstance(refs, (tuple, list)) else (refs, )
    if len(outs) != len(refs):
        raise RuntimeError(f'the ONNX model has {len(outs)} outputs, the eager one {len(refs)}')
    return [float(np.abs(out - ref.cpu().numpy()).max()) for out, ref in zip(outs, refs)]


def is_detector(graph: nn.Module) -> bool:
    """Whether a graph of :mod:`mmlit_tools.export_graphs` takes one image and its ``img_shape``."""
    from mmlit_tools.export_graphs import _DetectorGraph
    return isinstance(graph, _DetectorGraph)


def graph_inputs(graph: nn.Module, inputs: torch.Tensor, data_samples) -> Tuple[torch.Tensor, ...]:
    """The graph's inputs for a preprocessed batch: the images, and for a detector the ``img_shape`` of its
    one image (the size before padding, which the boxes are clipped to)."""
    if not is_detector(graph):
        return (inputs, )
    if inputs.shape[0] != 1:
        raise ValueError(f'a detector graph takes one image at a time, not a batch of {inputs.shape[0]}')
    return inputs, torch.tensor(data_samples[0].metainfo['img_shape'][:2], dtype=torch.int64)


# The size a dynamic export traces with: one no design choice is keyed to (torch.export would fix a size
# that equals the pretraining grid, where the embeddings skip their resize, or a side or batch of 1).
DYNAMIC_EXAMPLE = (8, 10)  # blocks of the size divisor, (height, width)


def example_inputs(graph: nn.Module, shape: Sequence[int], batch: int = 1) -> Tuple[torch.Tensor, ...]:
    """Random inputs of ``shape`` (H, W) for :func:`export_model` to trace: ``batch`` images, or one image
    and its ``img_shape`` for a detector."""
    height, width = shape
    if is_detector(graph):
        return torch.randn(1, 3, height, width), torch.tensor([height, width], dtype=torch.int64)
    return (torch.randn(batch, 3, height, width), )


def pad_inputs(model: nn.Module, size_divisor: int = 32) -> None:
    """Have a segmentor's data preprocessor pad test images to multiples of ``size_divisor`` (mmseg's
    ``test_cfg=dict(size_divisor=...)``; ``postprocess_result`` crops the padding off again), as a dynamic
    export needs. Detectors pad already; classifiers take the pipeline's crops."""
    preprocessor = model.data_preprocessor
    if type(model).__name__ == 'EncoderDecoder' and not (preprocessor.test_cfg or {}).get('size_divisor'):
        preprocessor.test_cfg = dict(preprocessor.test_cfg or {}, size_divisor=size_divisor)


def check_size(inputs: torch.Tensor, size_divisor: int = 32) -> None:
    """Refuse inputs a dynamic export does not serve, naming the fix."""
    height, width = inputs.shape[2:]
    if height % size_divisor or width % size_divisor:
        raise ValueError(f'the input is {height} x {width}; a dynamic ONNX file of a LIT model serves sides that '
                         f'are multiples of {size_divisor}: resize or pad the image (a static export, without '
                         '--dynamic, serves its one size)')


def export_model(graph: nn.Module, example: Tuple[torch.Tensor, ...], path: str, dynamic: bool = False,
                 size_divisor: int = 32, opset: int = DEFAULT_OPSET) -> Tuple[List[str], List[str]]:
    """Export a graph of :mod:`mmlit_tools.export_graphs` to ``path``, traced with ``example``
    (:func:`example_inputs`; of the size :data:`DYNAMIC_EXAMPLE` for a dynamic export); returns its input
    and output names.

    With ``dynamic`` the file serves every height and width that are multiples of ``size_divisor`` (the
    position embeddings and bias tables are resized inside the graph), and every batch size for the
    classifiers and segmentors (detectors take one image); else only ``example``'s shapes. Needs torch's
    dynamo exporter (torch >= 2.5) for whole models.
    """
    if not onnx_has_dynamo_exporter():
        raise RuntimeError(f'exporting whole models needs torch >= 2.5 (its dynamo ONNX exporter); this is torch '
                           f'{torch.__version__}. On torch 2.0 / 2.1 use mmdeploy (see docs/deployment.md).')
    detector = is_detector(graph)
    input_names = ['input', 'img_shape'] if detector else ['input']
    dynamic_shapes = None
    if dynamic:
        from torch.export import Dim
        height, width = example[0].shape[2:]
        if height % size_divisor or width % size_divisor:
            raise ValueError(f'a dynamic export needs an example whose sides are multiples of {size_divisor}, '
                             f'not {height} x {width}')
        dims = {2: size_divisor * Dim('height_blocks', min=1, max=4096 // size_divisor),
                3: size_divisor * Dim('width_blocks', min=1, max=4096 // size_divisor)}
        if not detector:
            if example[0].shape[0] < 2:
                raise ValueError('a dynamic export of a batched model needs an example batch of 2 or more '
                                 '(torch.export fixes a size of 1)')
            dims[0] = Dim('batch', min=1, max=1024)
        dynamic_shapes = (dims, None) if detector else (dims, )
    graph = graph.eval()
    with torch.no_grad():
        torch.onnx.export(graph, example, path, dynamo=True, external_data=False, opset_version=opset,
                          input_names=input_names, output_names=list(graph.output_names),
                          dynamic_shapes=dynamic_shapes, verbose=False)
    return input_names, list(graph.output_names)


class Runtime:
    """An ONNX file in onnxruntime or OpenVINO (``backend``), on the CPU.

    Args:
        path (str): The ONNX file.
        backend (str): ``'onnxruntime'`` or ``'openvino'``. Defaults to ``'onnxruntime'``.
        threads (int, optional): Threads for the runtime; its default if None.
        precision (str): ``'fp32'`` or ``'bf16'`` (OpenVINO only: its inference precision hint; OpenVINO
            would pick bf16 by itself on CPUs with AMX). Defaults to ``'fp32'``.
    """

    def __init__(self, path: str, backend: str = 'onnxruntime', threads: Optional[int] = None,
                 precision: str = 'fp32'):
        if not osp.isfile(path):
            raise FileNotFoundError(f'No ONNX file at {path}')
        if backend not in BACKENDS:
            raise ValueError(f'Unknown backend {backend!r}; choose from {BACKENDS}')
        if precision not in ('fp32', 'bf16') or (precision == 'bf16' and backend != 'openvino'):
            raise ValueError(f"precision {precision!r} with {backend}: onnxruntime runs 'fp32', OpenVINO "
                             "'fp32' or 'bf16'")
        self.backend = backend
        if backend == 'onnxruntime':
            import onnxruntime as ort
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
            self.input_names = [i.name for i in self._session.get_inputs()]
        else:
            try:
                import openvino as ov
            except ImportError as error:
                raise ImportError('the openvino backend needs the openvino package: pip install -r '
                                  'requirements/export.txt') from error
            config = {'INFERENCE_PRECISION_HINT': 'f32' if precision == 'fp32' else 'bf16'}
            if threads:
                config['INFERENCE_NUM_THREADS'] = threads
            self._compiled = ov.Core().compile_model(path, 'CPU', config)
            self._request = self._compiled.create_infer_request()
            self.input_names = [i.any_name for i in self._compiled.inputs]

    def __call__(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        """The outputs for ``inputs``, in the file's input order."""
        if len(inputs) != len(self.input_names):
            raise ValueError(f'the model takes {len(self.input_names)} inputs ({self.input_names}), '
                             f'not {len(inputs)}')
        if self.backend == 'onnxruntime':
            return self._session.run(None, dict(zip(self.input_names, inputs)))
        results = self._request.infer(dict(zip(self.input_names, inputs)))
        return [np.asarray(results[output]) for output in self._compiled.outputs]


def load_model(config: str, checkpoint: Optional[str] = None, cfg_options: Optional[dict] = None):
    """The whole model of ``config`` in eval mode on the CPU, with the weights of ``checkpoint`` (random if
    None), and its config."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from mmlit_tools.analysis import build_target
    model = build_target(config, cfg_options)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return model.eval(), cfg


def _test_pipeline(cfg) -> list:
    """The config's test pipeline without its annotation loading (images only)."""
    pipeline = cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline
    return [t for t in pipeline if not str(t['type']).split('.')[-1].startswith('LoadAnnotations')
            and str(t['type']).split('.')[-1] != 'LoadPanopticAnnotations']


def prepare(model: nn.Module, cfg, images: Sequence[str]):
    """Images through the config's test pipeline and the model's data preprocessor: the input batch and
    its data samples (metainfo: ``img_shape``, ``scale_factor``, ``ori_shape``, padding), as the model's
    ``test_step`` sees them."""
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import DefaultScope, init_default_scope
    scope = cfg.get('default_scope', 'mmlit')
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        pipeline = Compose(_test_pipeline(cfg))
        data = pseudo_collate([pipeline(dict(img_path=image, img_id=i)) for i, image in enumerate(images)])
    data = model.data_preprocessor(data, False)
    return data['inputs'], data['data_samples']


def reference(model: nn.Module, inputs: torch.Tensor, data_samples) -> list:
    """PyTorch's predictions for a preprocessed batch (the model's own ``predict``)."""
    import copy
    with torch.no_grad():
        return model.predict(inputs, copy.deepcopy(data_samples))


def to_data_samples(model: nn.Module, graph: nn.Module, outputs: Sequence[np.ndarray], data_samples) -> list:
    """The file's outputs as the model's predictions: OpenMMLab data samples with ``pred_*`` fields, made
    from the image by the same head code as ``predict`` (boxes to the original image, masks pasted and
    thresholded, segmentation maps cropped, resized and labelled)."""
    import copy

    from mmlit_tools.export_graphs import ClassifierGraph, SegmentorGraph
    outputs = [torch.from_numpy(np.asarray(output)) for output in outputs]
    samples = copy.deepcopy(data_samples)
    if isinstance(graph, ClassifierGraph):
        scores = outputs[0]
        for sample, score in zip(samples, scores):
            sample.set_pred_score(score).set_pred_label(score.argmax(keepdim=True))
        return samples
    if isinstance(graph, SegmentorGraph):
        return model.postprocess_result(outputs[0], samples)
    from mmdet.structures.bbox import scale_boxes
    from mmengine.structures import InstanceData
    boxes, scores, labels = outputs[:3]
    meta = samples[0].metainfo
    results = InstanceData(bboxes=scale_boxes(boxes.clone(), [1 / s for s in meta['scale_factor']]),
                           scores=scores, labels=labels.long())
    if len(outputs) > 3:
        head = model.roi_head.mask_head
        results.masks = head._predict_by_feat_single(
            outputs[3][:, None], boxes.clone(), torch.zeros_like(labels).long(), meta, model.roi_head.test_cfg,
            rescale=True, activate_map=True)
    samples[0].pred_instances = results
    return samples


def _box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import box_iou
    return box_iou(a.float(), b.float())


def compare(expected: list, got: list) -> Dict[str, float]:
    """Deviations of ``got`` (ONNX) from ``expected`` (PyTorch), one batch of data samples each, as
    :data:`TOLERANCES` names them; :func:`failures` reads them against the tolerances.

    Detections are matched greedily by label and box IoU; those PyTorch scores within the score tolerance
    of the last kept score may fall on either side of the cut and are not required.
    """
    first = expected[0]
    if 'pred_score' in first:  # classification
        return dict(score=max(float((e.pred_score - g.pred_score).abs().max()) for e, g in zip(expected, got)),
                    labels=min(float(e.pred_label.item() == g.pred_label.item()) for e, g in zip(expected, got)))
    if 'pred_sem_seg' in first:
        agree = [float((e.pred_sem_seg.data == g.pred_sem_seg.data).float().mean()) for e, g in zip(expected, got)]
        return dict(pixels=min(agree))
    deviations = dict(score=0., box=0., mask_iou=1., matched=1., detections=0.)
    for e, g in zip(expected, got):
        e, g = e.pred_instances, g.pred_instances
        deviations['detections'] += len(e)
        if len(e) == 0:
            deviations['matched'] = min(deviations['matched'], float(len(g) == 0))
            continue
        margin = float(e.scores.min()) + TOLERANCES['score']
        required = e.scores > margin if len(e) > 1 else torch.ones(len(e), dtype=torch.bool)
        iou = _box_iou(e.bboxes, g.bboxes) if len(g) else torch.zeros(len(e), 0)
        iou[e.labels[:, None] != g.labels[None, :]] = 0
        free = torch.ones(len(g), dtype=torch.bool)
        found = 0
        for i in torch.argsort(e.scores, descending=True).tolist():
            candidates = torch.where(free & (iou[i] > 0.5))[0]
            if len(candidates) == 0:
                continue
            j = int(candidates[iou[i, candidates].argmax()])
            free[j] = False
            found += int(required[i])
            deviations['score'] = max(deviations['score'], float((e.scores[i] - g.scores[j]).abs()))
            deviations['box'] = max(deviations['box'], float((e.bboxes[i] - g.bboxes[j]).abs().max()))
            if 'masks' in e:
                inter = (e.masks[i] & g.masks[j]).sum()
                union = (e.masks[i] | g.masks[j]).sum()
                deviations['mask_iou'] = min(deviations['mask_iou'], float(inter / union) if union else 1.)
        deviations['matched'] = min(deviations['matched'], found / int(required.sum()) if required.any() else 1.)
    return deviations


def failures(deviations: Dict[str, float]) -> List[str]:
    """The deviations of :func:`compare` beyond :data:`TOLERANCES`, as sentences."""
    problems = []
    for key, value in deviations.items():
        if key in ('score', 'box') and value > TOLERANCES[key]:
            problems.append(f'{key} differs by {value:.3g} (tolerance {TOLERANCES[key]})')
        elif key in ('mask_iou', 'matched', 'pixels') and value < TOLERANCES[key]:
            problems.append(f'{key} is {value:.4f} (at least {TOLERANCES[key]} needed)')
        elif key == 'labels' and value < 1:
            problems.append('a predicted class differs')
    return problems
