"""Training-loop components: :class:`IterationSeedHook` (also in the root hook registry) and
mmlit's :class:`AmpOptimWrapper` (mixed precision that also runs on the CPU, as ``mmlit.AmpOptimWrapper``)."""
from mmengine.registry import HOOKS as MMENGINE_HOOKS

from mmlit.registry import register_in_root

from .hooks import IterationSeedHook
from .optimizers import AmpOptimWrapper  # noqa: F401  (registers 'mmlit.AmpOptimWrapper')

register_in_root(IterationSeedHook, MMENGINE_HOOKS)
# AmpOptimWrapper stays out of the root registry, which has MMEngine's class of that name

__all__ = ['IterationSeedHook', 'AmpOptimWrapper']
