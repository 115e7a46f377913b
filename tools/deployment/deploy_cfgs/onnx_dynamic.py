# mmdeploy 1.3.1 (the floor's torch 2.1): the ONNX export every LIT deploy config shares. One file serves every
# image size: batch, height and width are dynamic. Opset 11, mmdeploy's own (its rewriters target it).
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None,
    optimize=True,
    dynamic_axes=dict(input={0: 'batch', 2: 'height', 3: 'width'}, output={0: 'batch'}))
backend_config = dict(type='onnxruntime')
# mmlit's rewriters (mmlit/deploy): what mmdeploy's own leave out for dynamic shapes
custom_imports = dict(imports=['mmlit.deploy.mmdeploy_rewriters'], allow_failed_imports=False)
