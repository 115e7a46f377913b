"""Exporting a LIT backbone to ONNX and checking the export with onnxruntime."""
from typing import List, Sequence

import numpy as np
import torch
import torch.nn as nn

from mmlit.utils.compat import onnx_has_dynamo_exporter

# GridSample (the DTM's sampling) needs opset 16; the dynamo exporter of torch >= 2.6 starts at 18,
# the TorchScript exporter of older torch goes up to 17
DEFAULT_OPSET = 18 if onnx_has_dynamo_exporter() else 17


def export_onnx(model: nn.Module, inputs: torch.Tensor, path: str, opset: int = DEFAULT_OPSET) -> List[str]:
    """Export a LIT backbone ``model`` in eval mode for inputs of ``inputs``'s shape (static: the position
    embeddings and bias tables are resized for that grid). Returns the output names.

    Uses torch's dynamo exporter where ``torch.onnx.export`` has one, else its TorchScript exporter
    (torch < 2.5); both give the same graph semantics, checked by :func:`onnx_max_error`.
    """
    if opset < 16:
        raise ValueError(f'opset {opset} has no GridSample, which the deformable token merging needs: '
                         'use opset 16 or newer')
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
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    outs = session.run(None, {session.get_inputs()[0].name: inputs.cpu().numpy()})
    with torch.no_grad():
        refs = model.eval()(inputs)
    refs = refs if isinstance(refs, (tuple, list)) else (refs, )
    if len(outs) != len(refs):
        raise RuntimeError(f'the ONNX model has {len(outs)} outputs, the eager one {len(refs)}')
    return [float(np.abs(out - ref.cpu().numpy()).max()) for out, ref in zip(outs, refs)]
