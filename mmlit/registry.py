"""mmlit's registries.

``MODELS``, ``DATASETS``, ``HOOKS`` and ``OPTIM_WRAPPERS`` are children of MMEngine's root registries
under the scope ``mmlit``, so ``type='mmlit.LIT'`` (``'mmlit.ToyShapes'``, ``'mmlit.AmpOptimWrapper'``)
resolves from any OpenMMLab registry (mmdet, mmseg, mmpretrain).
:func:`register_in_root` also puts the backbone (and the hook) into the root registry itself, so plain
``type='LIT'`` resolves from every child registry (``mmdet``, ``mmseg``, ``mmpretrain`` scopes) without
importing any of those packages. mmlit's ``AmpOptimWrapper`` is *not* put there: the root already has
MMEngine's class of that name, so configs name mmlit's as ``type='mmlit.AmpOptimWrapper'``.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmlit', locations=['mmlit.models'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmlit', locations=['mmlit.datasets'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmlit', locations=['mmlit.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmlit',
                          locations=['mmlit.engine'])


def register_in_root(module_cls: type, root: Registry = MMENGINE_MODELS) -> type:
    """Register ``module_cls`` in MMEngine's root registry ``root`` too (once), so that its plain name
    resolves from every downstream child registry."""
    if root.get(module_cls.__name__) is not module_cls:
        root.register_module(module=module_cls)
    return module_cls
