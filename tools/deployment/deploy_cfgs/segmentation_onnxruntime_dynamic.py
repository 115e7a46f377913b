# mmdeploy 1.3.1: a LIT segmentor (Semantic FPN tested, UperNet untested; mmseg's test_cfg mode='whole') to
# ONNX Runtime, any image size; the graph ends in the argmax, a class index per pixel.
_base_ = ['./onnx_dynamic.py']

onnx_config = dict(dynamic_axes=dict(output={0: 'batch', 2: 'height', 3: 'width'}))
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
