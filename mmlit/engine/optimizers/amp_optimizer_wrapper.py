"""MMEngine's ``AmpOptimWrapper``, plus a bfloat16 path for machines without an accelerator."""
import logging
from contextlib import contextmanager
from typing import Optional, Union

import mmengine.device
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper as MMEngineAmpOptimWrapper
from mmengine.optim import OptimWrapper

from mmlit.registry import OPTIM_WRAPPERS

from .cpu_autocast import cpu_autocast

# the devices MMEngine's AmpOptimWrapper accepts (musa: mmengine >= 0.10.4)
_ACCELERATOR_CHECKS = ('is_cuda_available', 'is_npu_available', 'is_mlu_available', 'is_musa_available')


def amp_accelerator_available() -> bool:
    """Whether MMEngine's ``AmpOptimWrapper`` can run here (CUDA, or the NPU/MLU/MUSA it also accepts)."""
    return any(getattr(mmengine.device, name, lambda: False)() for name in _ACCELERATOR_CHECKS)


@OPTIM_WRAPPERS.register_module()
class AmpOptimWrapper(MMEngineAmpOptimWrapper):
    """Automatic mixed precision that also runs on a machine without CUDA.

    Where MMEngine's :class:`~mmengine.optim.AmpOptimWrapper` runs (CUDA, NPU, MLU, MUSA), this *is*
    it: the same autocast dtype, the same ``GradScaler`` built from ``loss_scale``, the same state dict.
    Without such a device, where MMEngine's refuses to start, it trains in bfloat16 autocast on the CPU:
    bfloat16 has float32's exponent range, so gradients need no loss scaling and ``loss_scale`` is
    accepted and ignored (``loss_scaler`` is None); ``dtype`` must be None or bfloat16 (MMEngine's CPU
    autocast takes nothing else). One warning line says so. MMCV's ``nms`` and ``roi_align``, which have
    no bfloat16 CPU kernel, run in float32 inside the autocast (:mod:`.cpu_autocast`). The state dict is
    then the plain :class:`~mmengine.optim.OptimWrapper`'s, and a checkpoint saved on a GPU (with a
    ``loss_scaler`` entry) resumes on the CPU and vice versa.

    Configs name it ``type='mmlit.AmpOptimWrapper'``; it takes the arguments of MMEngine's.
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Optional[Union[str, torch.dtype]] = None,
                 use_fsdp: bool = False,
                 **kwargs):
        self.on_cpu = not amp_accelerator_available()
        if not self.on_cpu:
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(f'AmpOptimWrapper: no CUDA device, and CPU autocast runs only in bfloat16, '
                             f'not {dtype}: set dtype=None or dtype="bfloat16"')
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = None
        self.cast_dtype = torch.bfloat16
        print_log('AmpOptimWrapper: no CUDA device, training with bfloat16 autocast on CPU (no loss scaling)',
                  logger='current', level=logging.WARNING)

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Backpropagate ``loss``: scaled by the ``GradScaler`` (MMEngine's wrapper), or plainly on the CPU.

        Args:
            loss (Tensor): The loss of the current iteration.
            **kwargs: Passed on to :meth:`torch.Tensor.backward`.
        """
        if self.loss_scaler is None:
            OptimWrapper.backward(self, loss, **kwargs)
        else:
            super().backward(loss, **kwargs)

    def step(self, **kwargs) -> None:
        """Update the parameters.

        With a loss scaler, MMEngine's step: unscale the gradients (and clip them if ``clip_grad`` is
        set), step through the ``GradScaler`` (which skips steps with inf/NaN gradients) and update the
        scale. On the CPU, :class:`~mmengine.optim.OptimWrapper`'s: clip if set, then ``optimizer.step``.

        Args:
            **kwargs: Passed on to :meth:`torch.optim.Optimizer.step`.
        """
        if self.loss_scaler is None:
            OptimWrapper.step(self, **kwargs)
        else:
            super().step(**kwargs)

    def state_dict(self) -> dict:
        """The optimizer's state dict, plus the ``GradScaler``'s under ``loss_scaler`` when there is one.

        Returns:
            dict: The state to checkpoint; on the CPU it has no ``loss_scaler`` entry.
        """
        if self.loss_scaler is None:
            return OptimWrapper.state_dict(self)
        return super().state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state dict of :meth:`state_dict`, saved on either kind of machine.

        On the CPU a ``loss_scaler`` entry (from a GPU run) is dropped (from a copy; ``state_dict`` is left
        as it is). With a loss scaler, MMEngine's wrapper restores the ``GradScaler`` from ``loss_scaler``
        when the entry is there (a CPU checkpoint has none: the scaler keeps its initial state).

        Args:
            state_dict (dict): The optimizer's state dict, with or without a ``loss_scaler`` entry.
        """
        if self.loss_scaler is None:
            state_dict = dict(state_dict)
            state_dict.pop('loss_scaler', None)  # saved with a GPU's loss scaler: bfloat16 needs none
            OptimWrapper.load_state_dict(self, state_dict)
        else:
            super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Context of one forward pass and loss computation: autocast in :attr:`cast_dtype`.

        With an accelerator, MMEngine's context: its autocast, in the device's default dtype (float16 on
        CUDA) when ``cast_dtype`` is None. On the CPU, :func:`.cpu_autocast` in bfloat16, with MMCV's
        float32-only ops run in float32. Either way gradient synchronisation is
        skipped during gradient accumulation, as :class:`~mmengine.optim.OptimWrapper` does.

        Args:
            model (nn.Module): The model being trained.
        """
        if not self.on_cpu:
            with super().optim_context(model):
                yield
            return
        with OptimWrapper.optim_context(self, model), cpu_autocast(self.cast_dtype):
            yield
