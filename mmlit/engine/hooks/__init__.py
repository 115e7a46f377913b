"""Runner hooks: :class:`IterationSeedHook`, which reseeds the random generators every iteration."""
from .iteration_seed_hook import IterationSeedHook

__all__ = ['IterationSeedHook']
