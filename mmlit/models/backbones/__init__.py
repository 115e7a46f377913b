from .lit import LIT
from .lit_stage import LITStage

__all__ = ['LIT', 'LITStage']
