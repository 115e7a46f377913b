"""Counting the FLOPs of LIT models, in the convention of the LIT paper: one multiply-add is one FLOP.

MMEngine's ``FlopAnalyzer`` (a port of fvcore's) traces the model and counts convolutions, linear
layers, matmuls, norms and ``grid_sample`` (4 per sampled value: the DTM's bilinear sampling). On top of
it this counts ``F.scaled_dot_product_attention``: ``q @ k^T`` and ``attn @ v``, that is
B x heads x L x S x (d_qk + d_v) multiply-adds, the two attention matmuls the paper counts.
"""
from typing import Any, List, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Multiply-adds of ``aten::scaled_dot_product_attention(q, k, v, ...)``."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    *batch, L, d_qk = q
    S, d_v = k[-2], v[-1]
    n = 1
    for size in batch:
        n *= size
    return n * L * S * (d_qk + d_v)


def flop_analyzer(module: nn.Module, inputs: torch.Tensor) -> FlopAnalyzer:
    """A ``FlopAnalyzer`` of ``module(inputs)`` that also counts attention; silent about ops it skips
    (element-wise ones such as GELU, softmax, additions), as the paper's count is."""
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def analyse_target(target: str, shape, cfg_options=None) -> Tuple[FlopAnalyzer, nn.Module]:
    """The ``FlopAnalyzer`` of one image's inference pass through a target of
    :func:`mmlit_tools.analysis.build_target` (an arch, or a config's whole model without
    post-processing), and the model."""
    from .analysis import TensorForward, build_target, dummy_batch
    model = build_target(target, cfg_options).eval()
    inputs, samples = dummy_batch(model, 1, shape)
    analyzer = flop_analyzer(TensorForward(model, samples), inputs)
    with torch.no_grad():
        analyzer.total()  # trace now, while gradients are off
    return analyzer, model


def count_params(module: nn.Module) -> int:
    """Number of parameter elements of ``module``, trainable or not."""
    return sum(p.numel() for p in module.parameters())
