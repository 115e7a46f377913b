"""LIT-family models: the backbones (registered in MMEngine's root model registry too, so ``type='LIT'``
and ``type='LITv2'`` build from the mmdet, mmseg and mmpretrain registries), their layers and utilities."""
from mmlit.registry import register_in_root

from .backbones import LIT, LITv2  # noqa: F401  (registers the backbones)

register_in_root(LIT)
register_in_root(LITv2)

__all__ = ['LIT', 'LITv2']
