"""mmseg's ``Upsample`` with an output size that follows the input's shape in traced and exported graphs.

``Upsample`` (the scale heads of the Semantic FPN's ``FPNHead``) computes ``int(side * scale_factor)``.
``int()`` of a traced or symbolic size fixes it to the example's (under ``torch.export`` and the
TorchScript tracer alike): a dynamic file then upsamples every other image to the example's feature sizes
and the head's sum resizes that back, so the map is slightly wrong and nothing fails. With an integer scale
factor the size is the input's sides times that integer, which stays symbolic, with the same results.
"""
import torch
import torch.nn.functional as F


def upsample_by_shape(module, x: torch.Tensor) -> torch.Tensor:
    """``Upsample.forward`` of ``module`` on ``x``, an integer ``scale_factor`` multiplying the input's
    sides (other factors and fixed sizes as ``Upsample`` computes them)."""
    factor = module.scale_factor
    if module.size or not (isinstance(factor, int) or float(factor).is_integer()):
        size = module.size or [int(side * factor) for side in x.shape[-2:]]
    else:
        size = [side * int(factor) for side in x.shape[-2:]]
    return F.interpolate(x, size, None, module.mode, module.align_corners)
