# mmdeploy 1.3.1: a LIT classifier (mmpretrain) to ONNX Runtime, any batch and image size.
_base_ = ['./onnx_dynamic.py']

codebase_config = dict(type='mmpretrain', task='Classification')
