"""Linear layers of CPU inference through oneDNN, with the MLP's GELU and the residual add fused.

``F.linear`` with a bias runs on the CPU as ``addmm``: it first copies the bias into every row of the
output, then adds the matrix product. On LIT's early stages, whose MLPs have few channels and many tokens,
that copy and the separate GELU pass over the hidden activations cost as much as a third of the GEMM
itself. oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, what inductor calls for CPU linears)
adds the bias and applies the GELU or the residual add inside the GEMM, on each tile while it is in cache.

Used only for float32 CPU inference (no autograd, no autocast, not while tracing: a ``torch.jit.trace``,
as FLOP counters take, must record the plain ``aten::linear``) on a torch built with oneDNN; everywhere
else :func:`linear` calls the layer and the plain ops.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmlit.utils.compat import cpu_autocast_enabled, is_tracing

_mkldnn = getattr(torch.ops, 'mkldnn', None)
# the fused linear of oneDNN (torch >= 2.0 built with oneDNN); detected once, a constant under torch.compile
_HAS_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(_mkldnn, '_linear_pointwise')


def onednn_linear_usable(x: torch.Tensor, *layers: nn.Linear) -> bool:
    """Whether :func:`linear` may run ``layers`` on ``x`` through oneDNN: float32 CPU tensors, no autograd
    (the op has no backward), no CPU autocast (whose dtype it would ignore) and no tracing."""
    return (_HAS_ONEDNN_LINEAR and x.device.type == 'cpu' and x.dtype == torch.float32
            and not torch.is_grad_enabled() and not is_tracing() and not torch.jit.is_tracing()
            and not cpu_autocast_enabled()
            and all(layer.weight.device.type == 'cpu' and layer.weight.dtype == torch.float32 for layer in layers))


def linear(x: torch.Tensor,
           layer: nn.Linear,
           gelu: bool = False,
           residual: Optional[torch.Tensor] = None,
           onednn: bool = False) -> torch.Tensor:
    """``layer(x)``, then the exact (erf) GELU when ``gelu``, then ``+ residual`` when one is given.

    Args:
        x (Tensor): Input (..., in_features).
        layer (nn.Linear): The layer whose weight and bias are used.
        gelu (bool): Apply ``F.gelu`` (exact) to the output. Defaults to False.
        residual (Tensor, optional): Added to the output (same shape as it). Not with ``gelu``.
        onednn (bool): Run through oneDNN with the GELU / add fused; only where
            :func:`onednn_linear_usable` holds. Defaults to False: ``layer(x)`` (its hooks run) and the
            plain ops.

    Returns:
        Tensor: (..., out_features).
    """
    if gelu and residual is not None:
        raise ValueError('linear: give gelu or residual, not both (oneDNN fuses one post-op here)')
    if onednn:
        if residual is not None:
            return _mkldnn._linear_pointwise.binary(x, residual, layer.weight, layer.bias, 'add')
        return _mkldnn._linear_pointwise(x, layer.weight, layer.bias, 'gelu' if gelu else 'none', [],
                                         'none' if gelu else '')
    out = layer(x)
    if gelu:
        return F.gelu(out)
    return out if residual is None else residual + out
