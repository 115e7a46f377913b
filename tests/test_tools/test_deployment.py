"""Whole models to ONNX (tools/deployment/pytorch2onnx.py, tools/mmlit_tools/{export_graphs,deploy}.py).

The graphs' eager outputs must be the models' own ``predict`` (fast, every task); the end-to-end exports
(slow) run the tool on toy models whose heads score well apart, on two image sizes from one dynamic file,
in onnxruntime and OpenVINO.
"""
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from toy_deploy import CLASSIFIER, DEMO, FPN, MASK_RCNN, RETINANET, ROOT, checkpoint_of, images, spread_heads, toy_model

TOOL = osp.join(ROOT, 'tools', 'deployment', 'pytorch2onnx.py')


@pytest.mark.parametrize('config', [MASK_RCNN['lit_ti'], RETINANET, FPN, CLASSIFIER],
                         ids=['mask_rcnn', 'retinanet', 'fpn', 'classifier'])
def test_graph_gives_the_models_predictions(config, tmp_path):
    """Eager, the graph's outputs through :func:`to_data_samples` are ``predict``'s, with detections."""
    from mmlit_tools import deploy
    from mmlit_tools.export_graphs import graph_for
    model, cfg = toy_model(config)
    graph = graph_for(model)
    for image in images(tmp_path):
        inputs, samples = deploy.prepare(model, cfg, [image])
        expected = deploy.reference(model, inputs, samples)
        with torch.no_grad():
            outputs = graph(*deploy.graph_inputs(graph, inputs, samples))
        outputs = [o.numpy() for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
        deviations = deploy.compare(expected, deploy.to_data_samples(model, graph, outputs, samples))
        assert not deploy.failures(deviations), deviations
        if 'detections' in deviations:
            assert deviations['detections'] >= 5, deviations  # the test sees real detections
        # eager, the same arithmetic but for the order of additions
        assert deviations.get('score', 0) <= 1e-5 and deviations.get('box', 0) <= 1e-3, deviations


@pytest.mark.parametrize('config', [FPN, CLASSIFIER, MASK_RCNN['lit_s']], ids=['fpn', 'classifier', 'mask_rcnn_lit_s'])
def test_dynamic_program_follows_the_input_size(config):
    """``torch.export`` with dynamic sizes keeps no size of its example: the program runs, guards checked,
    at another size and gives the eager graph's outputs (mmseg's ``Upsample`` computes its size with
    ``int()``, the fast paths compare token counts: either pinned the example's sizes)."""
    from torch.export import Dim

    from mmlit_tools.export_graphs import graph_for
    model, _ = toy_model(config)
    graph = graph_for(model).eval()
    dims = {2: 32 * Dim('height_blocks', min=1, max=128), 3: 32 * Dim('width_blocks', min=1, max=128)}
    if 'Detector' in type(graph).__name__:
        example, dynamic = (torch.randn(1, 3, 256, 320), torch.tensor([256, 320])), (dims, None)
        other = (torch.randn(1, 3, 192, 224), torch.tensor([192, 224]))
    else:
        dims[0] = Dim('batch', min=1, max=64)
        example, dynamic, other = (torch.randn(2, 3, 256, 320), ), (dims, ), (torch.randn(1, 3, 192, 224), )
    with torch.no_grad():
        program = torch.export.export(graph, example, dynamic_shapes=dynamic, strict=False)
        got, expected = program.module()(*other), graph(*other)
    got, expected = (list(t) if isinstance(t, (list, tuple)) else [t] for t in (got, expected))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_compare_reports_what_differs(tmp_path):
    """A moved box, a dropped detection and a changed mask fail the check; an unchanged copy passes."""
    import copy

    from mmlit_tools import deploy
    from mmlit_tools.export_graphs import graph_for
    model, cfg = toy_model(MASK_RCNN['lit_ti'])
    inputs, samples = deploy.prepare(model, cfg, [DEMO])
    expected = deploy.reference(model, inputs, samples)
    assert deploy.failures(deploy.compare(expected, copy.deepcopy(expected))) == []
    moved = copy.deepcopy(expected)
    moved[0].pred_instances.bboxes[0] += 2
    assert any('box' in p for p in deploy.failures(deploy.compare(expected, moved)))
    dropped = copy.deepcopy(expected)
    dropped[0].pred_instances = dropped[0].pred_instances[1:]
    assert any('matched' in p for p in deploy.failures(deploy.compare(expected, dropped)))
    masked = copy.deepcopy(expected)
    masked[0].pred_instances.masks[0] = ~masked[0].pred_instances.masks[0]
    assert any('mask_iou' in p for p in deploy.failures(deploy.compare(expected, masked)))
    assert graph_for(model).output_names == ('boxes', 'scores', 'labels', 'masks')


def test_nms_and_decode_equal_mmdet():
    """The graphs' batched NMS and box decoding against mmcv's ``batched_nms`` and mmdet's coder."""
    from mmcv.ops import batched_nms
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

    from mmlit_tools.export_graphs import _batched_nms, _decode
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=generator) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(300, 2, generator=generator) * 30], 1)
    scores = torch.rand(300, generator=generator)
    groups = torch.randint(0, 4, (300, ), generator=generator)
    _, keep = batched_nms(boxes, scores, groups, dict(type='nms', iou_threshold=0.5))
    assert torch.equal(_batched_nms(boxes, scores, groups, 0.5), keep)
    for kwargs in (dict(), dict(target_stds=[0.1, 0.1, 0.2, 0.2]), dict(add_ctr_clamp=True, ctr_clamp=8)):
        coder = DeltaXYWHBBoxCoder(**kwargs)
        for k in (1, 3):  # class-agnostic and per-class deltas
            deltas = torch.randn(300, 4 * k, generator=generator)
            torch.testing.assert_close(_decode(coder, boxes, deltas), coder.decode(boxes, deltas))


def test_unsupported_models_and_inputs_are_refused():
    from mmlit_tools import deploy
    from mmlit_tools.export_graphs import SegmentorGraph, graph_for
    with pytest.raises(NotImplementedError, match='ImageClassifier'):
        graph_for(torch.nn.Linear(2, 2))
    model, _ = toy_model(FPN)
    model.test_cfg = dict(mode='slide', crop_size=(64, 64), stride=(32, 32))
    with pytest.raises(ValueError, match="mode='whole'"):
        SegmentorGraph(model)
    with pytest.raises(ValueError, match='multiples of 32'):
        deploy.check_size(torch.zeros(1, 3, 100, 64))
    with pytest.raises(ValueError, match='bf16'):
        deploy.Runtime(__file__, 'onnxruntime', precision='bf16')


def run_export(config: str, tmp_path, *extra) -> str:
    out = str(tmp_path / 'model.onnx')
    args = [sys.executable, TOOL, config, checkpoint_of(config, tmp_path), '--out', out, *extra]
    proc = subprocess.run(args, cwd=str(tmp_path), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert osp.getsize(out) > 1e6
    return proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize('config', [MASK_RCNN['lit_ti'], MASK_RCNN['lit_s'], MASK_RCNN['litv2_s'], RETINANET, FPN,
                                    CLASSIFIER],
                         ids=['mask_rcnn_lit_ti', 'mask_rcnn_lit_s', 'mask_rcnn_litv2_s', 'retinanet', 'fpn',
                              'classifier'])
def test_dynamic_export_serves_two_sizes_in_both_runtimes(config, tmp_path):
    """One dynamic file; the demo image and a wider one; onnxruntime and OpenVINO within the tolerances."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('openvino')
    pytest.importorskip('onnxscript')
    out = run_export(config, tmp_path, '--dynamic', '--verify', *images(tmp_path), '--backend', 'onnxruntime',
                     'openvino')
    lines = [line for line in out.splitlines() if ' vs PyTorch: ' in line]
    assert len(lines) == 4 and all(line.endswith(' ok') for line in lines), out
    assert len({re.search(r'\((\d+ x \d+)\)', line).group(1) for line in lines}) == 2, out  # two input sizes
    for line in lines:
        found = re.search(r'detections (\d+)', line)
        assert found is None or int(found.group(1)) >= 5, out


@pytest.mark.slow
def test_static_export_and_a_failed_check(tmp_path):
    """A static file serves its one size; a file from other weights fails --verify with the reason."""
    pytest.importorskip('onnxruntime')
    out = run_export(RETINANET, tmp_path, '--verify', DEMO)
    assert re.search(r'size \(\d+, \d+\) only', out) and out.rstrip().endswith(' ok'), out
    from mmlit_tools import deploy
    from mmlit_tools.export_graphs import graph_for
    model, cfg = toy_model(RETINANET)
    spread_heads(model, seed=1)  # other head weights than the file's
    graph = graph_for(model)
    inputs, samples = deploy.prepare(model, cfg, [DEMO])
    outputs = deploy.Runtime(str(tmp_path / 'model.onnx'))([x.numpy() for x in deploy.graph_inputs(graph, inputs,
                                                                                                   samples)])
    deviations = deploy.compare(deploy.reference(model, inputs, samples),
                                deploy.to_data_samples(model, graph, outputs, samples))
    assert deploy.failures(deviations)
    assert np.isfinite(list(deviations.values())).all()


def test_openvino_bf16_keeps_the_dtm_sampling_points(tmp_path):
    """OpenVINO's bf16 precision hint computes the exported DTM about as well as bf16 computes its
    convolutions (the sampling points would round by a pixel at this size in normalised coordinates)."""
    pytest.importorskip('openvino')
    from mmlit.models.layers import DeformableTokenMerging
    from mmlit.utils.compat import onnx_has_dynamo_exporter
    from mmlit_tools.deploy import DEFAULT_OPSET, Runtime
    torch.manual_seed(0)
    dtm = DeformableTokenMerging(32, 64).eval()
    with torch.no_grad():
        dtm.conv_offset.weight.normal_(0, 0.05)  # offsets of about a pixel, as trained
    x = torch.randn(1, 32, 200, 304)
    path = str(tmp_path / 'dtm.onnx')
    kwargs = dict(dynamo=True, external_data=False) if onnx_has_dynamo_exporter() else {}
    torch.onnx.export(dtm, (x, ), path, input_names=['input'], opset_version=DEFAULT_OPSET, **kwargs)
    with torch.no_grad():
        ref = dtm(x).numpy()
    out = Runtime(path, 'openvino', precision='bf16')([x.numpy()])[0]
    assert np.abs(out - ref).mean() / np.abs(ref).mean() < 0.02
