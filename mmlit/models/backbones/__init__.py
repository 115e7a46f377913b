"""The LIT family's backbones (:class:`LIT`, :class:`LITv2`, siblings over :class:`LITBase`), their stage
(:class:`LITStage`), and the one resolver of arch names (:func:`resolve_arch`)."""
from typing import Tuple

from .lit import LIT, LITBase, LITStage, LITv2

__all__ = ['LIT', 'LITv2', 'LITBase', 'LITStage', 'resolve_arch']


def resolve_arch(name: str) -> Tuple[type, str]:
    """The backbone class and its arch key for an arch name of the whole family: ``'ti'``, ``'s'``,
    ``'m'``, ``'b'`` (or ``'tiny'``, ``'small'``, ...) for LIT; ``'litv2-s'``, ``'litv2_m'``, ``'LITv2-B'``
    for LITv2.

    Raises:
        ValueError: An unknown name, with the valid ones.
    """
    key = name.lower()
    cls = LIT
    if key.startswith('litv2'):
        cls, key = LITv2, key[len('litv2'):].lstrip('-_')
    if key not in cls.arch_zoo:
        valid = sorted(LIT.arch_zoo) + [f'litv2-{k}' for k in sorted(LITv2.arch_zoo)]
        raise ValueError(f'Unknown arch name {name!r}; valid names are {valid}')
    return cls, key
