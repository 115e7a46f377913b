"""mmlit: LIT backbones ("Less is More: Pay Less Attention in Vision Transformers") for OpenMMLab 2.x.

``import mmlit`` (or ``custom_imports=dict(imports=['mmlit'])`` in a config) registers ``LIT`` and
``LITv2`` so that ``type='LIT'``, ``type='mmlit.LIT'`` and ``type='mmlit.LITv2'`` build from the mmdet,
mmseg and mmpretrain model registries, and makes MMEngine load checkpoints without running code, on every
supported torch (see :mod:`mmlit.utils.safe_checkpoint` and :mod:`mmlit.utils.stored_config`), takes the
authors' checkpoints as ``official-lit+<path or URL>`` and, with mmpretrain installed, lists mmlit's
classifiers in ``mmpretrain.list_models`` / ``get_model`` (:mod:`mmlit.apis.model_hub`).
"""
from .utils import register_safe_loading
from .version import __version__, version_info

register_safe_loading()

from . import datasets  # noqa: E402,F401  (registers mmlit.ToyShapes)
from .apis import register_model_hub_when_imported, register_official_scheme  # noqa: E402
from .engine import IterationSeedHook  # noqa: E402
from .models import LIT, LITv2  # noqa: E402

register_official_scheme()
register_model_hub_when_imported()  # mmpretrain.get_model / list_models find mmlit's classifiers

__all__ = ['__version__', 'version_info', 'LIT', 'LITv2', 'IterationSeedHook']
