"""The LIT family's backbones (:class:`LIT`, :class:`LITv2`) and their stage (:class:`LITStage`)."""
from .lit import LIT
from .lit_stage import LITStage
from .litv2 import LITv2

__all__ = ['LIT', 'LITv2', 'LITStage']
