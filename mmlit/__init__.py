"""mmlit: LIT backbones ("Less is More: Pay Less Attention in Vision Transformers") for OpenMMLab 2.x.

``import mmlit`` (or ``custom_imports=dict(imports=['mmlit'])`` in a config) registers ``LIT`` and
``LITv2`` so that ``type='LIT'``, ``type='mmlit.LIT'`` and ``type='mmlit.LITv2'`` build from the mmdet,
mmseg and mmpretrain model registries, and makes MMEngine load checkpoints without running code, on every
supported torch (see :mod:`mmlit.utils.safe_checkpoint` and :mod:`mmlit.utils.stored_config`).
"""
from .utils import register_safe_loading
from .version import __version__, version_info

register_safe_loading()

from . import datasets  # noqa: E402,F401  (registers mmlit.ToyShapes)
from .engine import IterationSeedHook  # noqa: E402
from .models import LIT, LITv2  # noqa: E402

__all__ = ['__version__', 'version_info', 'LIT', 'LITv2', 'IterationSeedHook']
