from mmlit.registry import register_in_root

from .backbones import LIT  # noqa: F401  (registers the backbone)

register_in_root(LIT)

__all__ = ['LIT']
