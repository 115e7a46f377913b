"""bfloat16 autocast on the CPU, with float32 islands for the MMCV ops that have no bfloat16 CPU kernel.

``torch.autocast`` runs an op in float32 when the op has no low-precision kernel, but it only sees ops of
PyTorch's dispatcher. MMCV's compiled ops are called straight through pybind, so autocast cannot reach
them, and two that every mmdet two-stage detector trains with accept only float32 on the CPU:

- ``nms`` (``mmcv.ops.nms.NMSop``): the CPU kernel reads the boxes as ``float`` and raises
  "expected scalar type Float but found BFloat16" (mmdet makes the anchors, hence the proposals, in the
  dtype of the classification scores, bfloat16 under autocast).
- ``roi_align`` (``mmcv.ops.roi_align``, which ``mmcv.ops.RoIAlign`` calls): the CPU kernels dispatch
  float32/float64/float16 only.

:func:`cpu_autocast` is MMEngine's ``autocast(device_type='cpu')`` plus, while it is active, float32
versions of these two: their floating inputs are cast to float32 and the result back to the input dtype,
outside the autograd function, so the backward pass runs in float32 too (the casts are differentiable).
Outside the context, and for float32 or non-CPU inputs, MMCV's functions are untouched.
"""
import functools
import sys
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

import torch

from mmlit.utils.compat import cpu_autocast_enabled

_REDUCED = (torch.bfloat16, torch.float16)


def _needs_fp32(*tensors) -> bool:
    """True when CPU autocast is on and any of ``tensors`` is a CPU tensor in bfloat16 or float16.

    Arguments that are not tensors are ignored.
    """
    return cpu_autocast_enabled() and any(
        torch.is_tensor(t) and t.device.type == 'cpu' and t.dtype in _REDUCED for t in tensors)


def _fp32_roi_align(roi_align: Callable) -> Callable:
    """Wrap ``mmcv.ops.roi_align`` so that it runs in float32 where :func:`_needs_fp32` says so.

    There the feature map and the RoIs are cast to float32 and the pooled features back to the feature
    map's dtype; every other call passes through unchanged.

    Args:
        roi_align (Callable): ``roi_align(input, rois, *args, **kwargs)``, the function to wrap.

    Returns:
        Callable: The wrapper, with the signature of ``roi_align``.
    """

    @functools.wraps(roi_align)
    def wrapper(input, rois, *args, **kwargs):
        if not _needs_fp32(input, rois):
            return roi_align(input, rois, *args, **kwargs)
        return roi_align(input.float(), rois.float(), *args, **kwargs).to(input.dtype)

    return wrapper


def _fp32_nms_forward(forward: Callable) -> Callable:
    """Wrap ``NMSop.forward`` so that it gets float32 boxes and scores where :func:`_needs_fp32` says so.

    The result, the indices of the kept boxes, needs no cast back.

    Args:
        forward (Callable): The plain function of the static method
            ``NMSop.forward(ctx, bboxes, scores, *args, **kwargs)``.

    Returns:
        staticmethod: The wrapper, ready to be set on ``NMSop`` as its ``forward``.
    """

    @functools.wraps(forward)
    def wrapper(ctx, bboxes, scores, *args, **kwargs):
        if _needs_fp32(bboxes, scores):
            bboxes, scores = bboxes.float(), scores.float()
        return forward(ctx, bboxes, scores, *args, **kwargs)  # returns indices: nothing to cast back

    return staticmethod(wrapper)


@contextmanager
def _patched(owner, name: str, make: Callable) -> Iterator[None]:
    """Context manager that sets ``owner.<name>`` to ``make(owner.<name>)`` and restores it on exit.

    The original is taken from ``owner.__dict__``, so a static method is put back as the descriptor it
    was (``getattr`` gives its plain function, which is what ``make`` receives).

    Args:
        owner (module | type): The module or class holding the attribute.
        name (str): The attribute; it must be defined on ``owner`` itself, not inherited.
        make (Callable): Builds the replacement from the current value.
    """
    original = owner.__dict__[name]
    setattr(owner, name, make(getattr(owner, name)))
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def mmcv_ops_in_fp32_under_cpu_autocast() -> Iterator[None]:
    """While active, MMCV's ``nms`` and ``roi_align`` run in float32 when CPU autocast hands them
    bfloat16/float16 tensors (see the module docstring)."""
    with ExitStack() as stack:
        nms_module = sys.modules.get('mmcv.ops.nms')  # (``mmcv.ops.nms`` the attribute is the function)
        roi_align_module = sys.modules.get('mmcv.ops.roi_align')
        if nms_module is not None:
            stack.enter_context(_patched(nms_module.NMSop, 'forward', _fp32_nms_forward))
        if roi_align_module is not None:
            stack.enter_context(_patched(roi_align_module, 'roi_align', _fp32_roi_align))
        yield


@contextmanager
def cpu_autocast(dtype: torch.dtype = torch.bfloat16) -> Iterator[None]:
    """MMEngine's CPU autocast in ``dtype``, with MMCV's float32-only CPU ops run in float32."""
    from mmengine.runner.amp import autocast
    with autocast(device_type='cpu', dtype=dtype), mmcv_ops_in_fp32_under_cpu_autocast():
        yield
