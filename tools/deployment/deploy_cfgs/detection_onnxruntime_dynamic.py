# mmdeploy 1.3.1: a LIT detector without masks (RetinaNet tested; Faster R-CNN untested) to ONNX Runtime, any
# image size.
#   python -m mmdeploy.tools.deploy ... or mmdeploy.apis.torch2onnx(img, work_dir, 'end2end.onnx',
#       'tools/deployment/deploy_cfgs/detection_onnxruntime_dynamic.py', MODEL_CONFIG, CHECKPOINT)
# (docs/deployment.md, "mmdeploy"). The model config needs custom_imports=['mmlit'] (mmlit's own configs have it).
_base_ = ['./onnx_dynamic.py']

onnx_config = dict(
    output_names=['dets', 'labels'],
    dynamic_axes=dict(
        _delete_=True,
        input={0: 'batch', 2: 'height', 3: 'width'},
        dets={0: 'batch', 1: 'num_dets'},
        labels={0: 'batch', 1: 'num_dets'}))
# mmdeploy's exportable NMS. mmdeploy takes score_thr, nms and max_per_img from the model's test_cfg where it
# has them; these are its fallbacks and its own pre_top_k / max_output_boxes_per_class.
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1))
