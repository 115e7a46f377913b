"""The optimizer state a checkpoint gives ``resume``, checked against the optimizer it is loaded into.

``torch.optim.Optimizer.load_state_dict`` takes a checkpoint's state tensors whatever their shape, and its
``param_groups`` settings as they are, ``fused`` / ``foreach`` included: fused AdamW then writes a whole
parameter's worth of elements into a 1-element ``exp_avg`` (out of bounds). MMEngine's optimizer wrappers
(``OptimWrapper``, ``AmpOptimWrapper`` and mmlit's) are made to check it first
(:func:`register_optimizer_state_checks`): every state tensor of torch's own optimizers has its parameter's
shape, ``step`` is one number, and the implementation flags are the current optimizer's.
"""
import functools

import torch

from .safe_checkpoint import CheckpointError

# param_groups settings that choose an implementation: the current run's, not the checkpoint's
_IMPLEMENTATION_FLAGS = ('fused', 'foreach', 'capturable', 'differentiable')


def check_optimizer_state(optimizer: torch.optim.Optimizer, state_dict: dict) -> dict:
    """``state_dict`` (an ``optimizer.state_dict()`` from a checkpoint), checked for ``optimizer``.

    Returns:
        dict: The state dict, its groups' implementation flags set to ``optimizer``'s.

    Raises:
        CheckpointError: A state tensor of another shape than its parameter (torch's optimizers), or a
            ``step`` that is not one number.
    """
    groups, saved = optimizer.param_groups, state_dict.get('param_groups')
    if not isinstance(saved, list) or len(saved) != len(groups):
        return state_dict  # torch refuses it with its own message
    saved = [dict(group) for group in saved]
    for group, saved_group in zip(groups, saved):
        for flag in _IMPLEMENTATION_FLAGS:
            if flag in group:
                saved_group[flag] = group[flag]
            else:
                saved_group.pop(flag, None)
    params = {i: p for group, saved_group in zip(groups, saved)
              for i, p in zip(saved_group.get('params', []), group['params'])}
    elementwise = type(optimizer).__module__.startswith('torch.optim')
    for index, state in (state_dict.get('state') or {}).items():
        param = params.get(index)
        if param is None or not isinstance(state, dict):
            continue
        for key, value in state.items():
            if key == 'step':
                if isinstance(value, torch.Tensor) and value.numel() != 1:
                    raise CheckpointError(f'the optimizer state of the checkpoint has a step of shape '
                                          f'{tuple(value.shape)}, not one number: resume from a checkpoint of '
                                          'this training run.')
            elif elementwise and isinstance(value, torch.Tensor) and value.shape != param.shape:
                raise CheckpointError(
                    f'the optimizer state of the checkpoint holds {key} of shape {tuple(value.shape)} for a '
                    f'parameter of shape {tuple(param.shape)}: it is not the optimizer state of this model; '
                    'resume from a checkpoint of this config.')
    return dict(state_dict, param_groups=saved)


def _checked(load_state_dict):
    """Wrap an optimizer wrapper's ``load_state_dict`` with :func:`check_optimizer_state`."""

    @functools.wraps(load_state_dict)
    def wrapper(self, state_dict: dict):
        if isinstance(state_dict, dict) and isinstance(getattr(self, 'optimizer', None), torch.optim.Optimizer):
            state_dict = check_optimizer_state(self.optimizer, state_dict)
        return load_state_dict(self, state_dict)

    wrapper.__mmlit_checked__ = True
    return wrapper


def register_optimizer_state_checks() -> None:
    """Check the optimizer state MMEngine's optimizer wrappers load (idempotent)."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    for cls in (OptimWrapper, AmpOptimWrapper):
        if not getattr(cls.load_state_dict, '__mmlit_checked__', False):
            cls.load_state_dict = _checked(cls.load_state_dict)
