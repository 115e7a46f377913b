"""Whole LIT models through mmdeploy 1.3.1, the export path of the floor stack (torch 2.0 / 2.1), with
mmlit's deploy configs (tools/deployment/deploy_cfgs) and rewriters (mmlit/deploy).

One dynamic ONNX file per toy model, traced on one image, run by mmdeploy's ONNX Runtime backend model on
three image sizes and compared with the PyTorch model on the same inputs, within the tolerances of
``tools/deployment/pytorch2onnx.py --verify``. Skipped where mmdeploy is not installed (CI installs it
on the floor stack, requirements/mmdeploy.txt).
"""
import os
import os.path as osp
import sys

import pytest
import torch

from toy_deploy import CLASSIFIER, FPN, MASK_RCNN, RETINANET, ROOT, checkpoint_of, images, toy_model

pytest.importorskip('mmdeploy')
pytest.importorskip('onnxruntime')

DEPLOY_CFGS = osp.join(ROOT, 'tools', 'deployment', 'deploy_cfgs')
CASES = {
    'mask_rcnn_lit_ti': (MASK_RCNN['lit_ti'], 'instance-seg_onnxruntime_dynamic.py'),
    'mask_rcnn_lit_s': (MASK_RCNN['lit_s'], 'instance-seg_onnxruntime_dynamic.py'),
    'mask_rcnn_litv2_s': (MASK_RCNN['litv2_s'], 'instance-seg_onnxruntime_dynamic.py'),
    'retinanet_lit_ti': (RETINANET, 'detection_onnxruntime_dynamic.py'),
    'fpn_lit_ti': (FPN, 'segmentation_onnxruntime_dynamic.py'),
    'classifier_lit_ti': (CLASSIFIER, 'classification_onnxruntime_dynamic.py'),
}


def export(case: str, backend: str, tmp_path):
    """The toy model of ``case`` through mmdeploy to ``backend``, traced on the demo image: (mmdeploy's
    backend model, the PyTorch model of the same weights, mmdeploy's task processor, three images)."""
    from mmdeploy.apis import torch2onnx
    from mmdeploy.apis.utils import build_task_processor, to_backend
    from mmdeploy.utils import load_config
    config, deploy_name = CASES[case]
    deploy_cfg_path = osp.join(DEPLOY_CFGS, deploy_name.replace('onnxruntime', backend))
    checkpoint = checkpoint_of(config, tmp_path)
    paths = images(tmp_path, tall=True)
    torch2onnx(paths[0], str(tmp_path), 'end2end.onnx', deploy_cfg_path, config, checkpoint, device='cpu')
    deploy_cfg, model_cfg = load_config(deploy_cfg_path, config)
    files = to_backend(backend, [str(tmp_path / 'end2end.onnx')], work_dir=str(tmp_path), deploy_cfg=deploy_cfg,
                       device='cpu')
    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    model, _ = toy_model(config)  # the checkpoint's weights
    return processor.build_backend_model(files), model, processor, paths


@pytest.mark.slow
@pytest.mark.parametrize('case', list(CASES))
def test_one_dynamic_file_serves_three_sizes(case, tmp_path):
    """Traced on the demo image (224 x 224), the file serves it, a wider and a taller image (the detectors'
    pipelines resize them to 128 x 128, 96 x 128 and 128 x 96): every detection (all but one of about 20
    for Mask R-CNN), mask, pixel or class PyTorch gives."""
    from mmlit_tools import deploy
    backend, model, processor, paths = export(case, 'onnxruntime', tmp_path)
    sizes = set()
    for path in paths:
        data, _ = processor.create_input(path, None)
        sizes.add(tuple(model.data_preprocessor(data, False)['inputs'].shape[2:]))
        with torch.no_grad():
            got, expected = backend.test_step(data), model.test_step(data)
        deviations = deploy.compare(expected, got)
        problems = deploy.failures(deviations)
        if 'mask_rcnn' in case:
            # mmdeploy's RPN suppresses the proposals of all FPN levels at once, mmdet's each level on its
            # own: the proposals differ a little, and near the score cut a detection may too
            problems = [p for p in problems if not p.startswith('matched')]
            assert deviations['matched'] >= 0.94, (path, deviations)  # one of about 20
        assert not problems, (path, deviations)
        if 'detections' in deviations:
            assert deviations['detections'] >= 5, deviations  # the test sees real detections
    assert len(sizes) == 3, sizes


@pytest.mark.slow
@pytest.mark.parametrize('case', ['classifier_lit_ti', 'fpn_lit_ti'])
def test_openvino_through_mmdeploy(case, tmp_path, monkeypatch):
    """mmdeploy's OpenVINO path (openvino-dev 2023: its Model Optimizer and Inference Engine) for the
    classifier and the segmentor on three sizes. Its backend model compiles with the CPU plugin's default
    precision, bf16 on CPUs with AMX: there the bf16 bounds of docs/deployment.md apply. (Detectors fail
    in mmdeploy's wrapper: the Inference Engine API cannot give outputs of a size known only at run time.)"""
    pytest.importorskip('openvino.inference_engine')
    from openvino.runtime import Core

    from mmlit_tools import deploy
    monkeypatch.setenv('PATH', osp.dirname(sys.executable) + os.pathsep + os.environ['PATH'])  # its `mo`
    bf16 = Core().get_property('CPU', 'INFERENCE_PRECISION_HINT').get_type_name() == 'bf16'
    backend, model, processor, paths = export(case, 'openvino', tmp_path)
    for path in paths:
        data, _ = processor.create_input(path, None)
        with torch.no_grad():
            got, expected = backend.test_step(data), model.test_step(data)
        deviations = deploy.compare(expected, got)
        if bf16:
            assert deviations.get('score', 0) <= 0.01 and deviations.get('pixels', 1) >= 0.98, (path, deviations)
            assert deviations.get('labels', 1) == 1, (path, deviations)
        else:
            assert not deploy.failures(deviations), (path, deviations)
