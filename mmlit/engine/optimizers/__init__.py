"""Optimizer wrappers: mmlit's :class:`AmpOptimWrapper`, with a bfloat16 CPU path."""
from .amp_optimizer_wrapper import AmpOptimWrapper

__all__ = ['AmpOptimWrapper']
