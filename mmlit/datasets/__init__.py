"""The toy shapes dataset that mmlit generates itself, for the quick start, the toy configs and the tests."""
from .toy_shapes import CLASSES, SEG_CLASSES, ensure_toy_shapes, generate_toy_shapes
from .toy_shapes_dataset import build_toy_shapes_dataset

__all__ = ['CLASSES', 'SEG_CLASSES', 'generate_toy_shapes', 'ensure_toy_shapes', 'build_toy_shapes_dataset']
