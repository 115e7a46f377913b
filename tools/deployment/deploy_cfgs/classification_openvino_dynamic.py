# mmdeploy 1.3.1: as classification_onnxruntime_dynamic.py, to OpenVINO. mmdeploy converts the ONNX file with
# OpenVINO's Model Optimizer and runs it through the Inference Engine API, both gone from OpenVINO 2024:
# this path needs openvino-dev 2023 (docs/deployment.md, "mmdeploy").
_base_ = ['./classification_onnxruntime_dynamic.py']

# the input shape the Model Optimizer builds the IR for (mmdeploy's wrapper reshapes it for each input size);
# float32 weights (the Model Optimizer of OpenVINO 2023 stores them in float16 unless told)
backend_config = dict(
    _delete_=True,
    type='openvino',
    model_inputs=[dict(opt_shapes=dict(input=[1, 3, 128, 128]))],
    mo_options=dict(flags=['--compress_to_fp16=False']))
