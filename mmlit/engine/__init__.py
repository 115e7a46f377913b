from mmengine.registry import HOOKS as MMENGINE_HOOKS

from mmlit.registry import register_in_root
from .hooks import IterationSeedHook

register_in_root(IterationSeedHook, MMENGINE_HOOKS)

__all__ = ['IterationSeedHook']
