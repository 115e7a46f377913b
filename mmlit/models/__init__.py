"""LIT models: the backbone (registered in MMEngine's root model registry too, so ``type='LIT'``
builds from the mmdet, mmseg and mmpretrain registries), its layers and utilities."""
from mmlit.registry import register_in_root

from .backbones import LIT  # noqa: F401  (registers the backbone)

register_in_root(LIT)

__all__ = ['LIT']
