# mmdeploy 1.3.1: a LIT Mask R-CNN (boxes and masks) to ONNX Runtime, any image size (see
# detection_onnxruntime_dynamic.py). The masks come out as the mask head's 28 x 28 per detection; mmdeploy's
# backend model pastes them into the image as mmdet does.
_base_ = ['./detection_onnxruntime_dynamic.py']

onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
    dynamic_axes=dict(masks={0: 'batch', 1: 'num_dets'}))
codebase_config = dict(post_processing=dict(export_postprocess_mask=False))
