"""The LIT backbone (:class:`LIT`) and its stage (:class:`LITStage`)."""
from .lit import LIT
from .lit_stage import LITStage

__all__ = ['LIT', 'LITStage']
