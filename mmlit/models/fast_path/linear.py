"""Linear layers of CPU inference through oneDNN, with the MLP's GELU and the residual add fused.

``F.linear`` with a bias runs on the CPU as ``addmm``: it first copies the bias into every row of the
output, then adds the matrix product. On LIT's early stages, whose MLPs have few channels and many tokens,
that copy and the separate GELU pass over the hidden activations cost as much as a third of the GEMM
itself. oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, which inductor also calls for some CPU
linears) adds the bias and applies the GELU or the residual add inside the GEMM, on each tile while it is
in cache.

:func:`fused_linear` reads the layer's ``weight`` and ``bias`` and does not call the module, so it is
taken only where that is what the module would compute (:func:`onednn_linear_usable`): float32 CPU
inference (no autograd, no autocast, not while ``torch.compile``, ``torch.export``, ONNX export or a
``torch.jit.trace``, as FLOP counters take, records the model), on x86 CPUs with AVX2 or AVX-512 (where it
was measured), with ``torch.backends.mkldnn`` enabled, and for plain ``nn.Linear`` layers with no forward
hooks (quantized, QAT, LoRA-style or hooked layers keep their own forward). Forward-mode AD under
``no_grad`` is not supported on this path.
"""
from typing import Iterable, Optional

import torch
import torch.nn as nn
from mmcv.cnn.bricks.wrappers import Linear as MMCVLinear

from mmlit.utils.compat import cpu_autocast_enabled, global_forward_hooks_registered, is_tracing


def _detect_onednn_linear() -> bool:
    """Whether this torch has oneDNN's fused linear with the overloads and arguments used here, on an x86
    CPU with AVX2 or AVX-512. Detected once, at import: a constant under ``torch.compile``."""
    if not torch.backends.mkldnn.is_available():
        return False
    op = getattr(torch.ops.mkldnn, '_linear_pointwise', None)
    if op is None or not hasattr(op, 'binary'):
        return False
    capability = getattr(torch.backends, 'cpu', None)
    if capability is None or not capability.get_cpu_capability().startswith('AVX'):
        return False
    unary, binary = str(op.default._schema), str(op.binary._schema)
    return 'str attr' in unary and 'algorithm' in unary and 'Tensor other' in binary


_HAS_ONEDNN_LINEAR = _detect_onednn_linear()
# forwards that compute exactly F.linear(x, weight, bias) (mmcv's wrapper only adds empty-input handling
# for torch < 1.6)
_PLAIN_LINEAR_FORWARDS = (nn.Linear.forward, MMCVLinear.forward)


def _has_forward_hooks(module: nn.Module) -> bool:
    """Whether calling ``module`` would run forward (pre-)hooks, its own or global ones."""
    return bool(module._forward_hooks or module._forward_pre_hooks) or global_forward_hooks_registered()


def onednn_linear_usable(x: torch.Tensor, *layers: nn.Module, skipped: Iterable[nn.Module] = ()) -> bool:
    """Whether :func:`fused_linear` computes what ``layers`` would on ``x``: float32 CPU inference on a
    supported CPU, outside tracing and autocast, and each layer a plain ``nn.Linear`` with float32
    weights and no forward hooks.

    ``skipped`` are the other modules a fused computation does not call (dropouts, DropPath, the module
    whose forward it replaces): each must be in eval mode, where it is the identity, and without hooks."""
    if not (_HAS_ONEDNN_LINEAR and torch.backends.mkldnn.enabled and x.device.type == 'cpu'
            and x.dtype == torch.float32 and not torch.is_grad_enabled() and not is_tracing()
            and not torch.jit.is_tracing() and not cpu_autocast_enabled()):
        return False
    if any(m.training or _has_forward_hooks(m) for m in skipped):
        return False
    return all(
        isinstance(layer, nn.Linear) and type(layer).forward in _PLAIN_LINEAR_FORWARDS
        and layer.weight.device.type == 'cpu' and layer.weight.dtype == torch.float32
        and not _has_forward_hooks(layer) for layer in layers)


def fused_linear(x: torch.Tensor,
                 layer: nn.Linear,
                 gelu: bool = False,
                 residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, layer.weight, layer.bias)`` through oneDNN, then the exact (erf) GELU when ``gelu``,
    or ``+ residual`` when one is given, fused into the GEMM. Only where :func:`onednn_linear_usable`.

    Args:
        x (Tensor): Input (..., in_features).
        layer (nn.Linear): The layer whose weight and bias are used.
        gelu (bool): Apply the exact GELU to the output. Defaults to False.
        residual (Tensor, optional): Added to the output (same shape as it). Not with ``gelu``.

    Returns:
        Tensor: (..., out_features).
    """
    if gelu and residual is not None:
        raise ValueError('fused_linear: give gelu or residual, not both (oneDNN fuses one post-op here)')
    if residual is not None:
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, layer.weight, layer.bias, 'add')
    if gelu:
        return torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, 'gelu', [], 'none')
    return torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, 'none', [], '')
