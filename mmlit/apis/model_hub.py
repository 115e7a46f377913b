"""mmlit's models by name in mmpretrain (``get_model``, ``list_models``), and the authors' checkpoints
converted while they load, for any OpenMMLab loader.

``official-lit+<path or URL>`` (:data:`OFFICIAL_PREFIX`) names a checkpoint in the official layout of
github.com/zhuang-group/LIT or github.com/ziplab/LITv2 (ImageNet, mmdet 2.x, mmseg 0.x): MMEngine's
``CheckpointLoader`` reads it as safely as any other (:mod:`.safe_checkpoint`) and converts it to
mmlit's layout (:func:`mmlit.models.utils.convert_checkpoint`), so ``load_from``, ``--checkpoint``,
``mmpretrain.get_model(..., pretrained=...)``, ``DetInferencer(weights=...)`` and
``MMSegInferencer(weights=...)`` all take the authors' files as released.

:func:`register_model_hub` registers mmlit's classifiers from ``model-index.yml`` with mmpretrain's
``ModelHub``, their released weights behind that prefix: ``get_model('lit-ti_8xb128_in1k', pretrained=True)``
downloads and converts the authors' file. ``import mmlit`` does not import mmpretrain (a detector or
segmentor user need not pay for it): :func:`register_model_hub_when_imported` registers at once where
``mmpretrain.apis`` is loaded, and otherwise as soon as it is.
"""
import importlib.abc
import importlib.util
import os.path as osp
import sys
import tempfile
import warnings
from typing import List, Optional, Tuple

import yaml
from mmengine.runner import CheckpointLoader

OFFICIAL_PREFIX = 'official-lit+'

_REGISTERED = []  # the model-index file registered with mmpretrain (once per process)


def load_official(filename: str, map_location=None) -> dict:
    """The checkpoint at ``filename`` (``official-lit+`` and a path or URL MMEngine loads), converted from
    the official layout: ``dict(state_dict=..., meta=...)``."""
    from mmlit.models.utils import convert_checkpoint
    checkpoint = CheckpointLoader.load_checkpoint(filename[len(OFFICIAL_PREFIX):], map_location=map_location)
    return convert_checkpoint(checkpoint)


def register_official_scheme() -> None:
    """Let MMEngine's ``CheckpointLoader`` load ``official-lit+...`` names (idempotent)."""
    CheckpointLoader.register_scheme(prefixes=OFFICIAL_PREFIX, loader=load_official, force=True)


def _model_index() -> Optional[str]:
    """mmlit's ``model-index.yml``: in the installed package's ``.mim`` (wheels; a link in editable
    installs) or beside the package in a checkout."""
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for path in (osp.join(package, '.mim', 'model-index.yml'), osp.join(osp.dirname(package), 'model-index.yml')):
        if osp.isfile(path):
            return path
    return None


def classifier_entries(model_index: str) -> Tuple[List[dict], List[dict]]:
    """The image classifiers listed by ``model_index`` (through the metafiles it imports), config paths
    absolute and released weights behind :data:`OFFICIAL_PREFIX`, and the collections."""
    root = osp.dirname(osp.abspath(model_index))
    with open(model_index) as f:
        index = yaml.safe_load(f)
    entries, collections = [], []
    for metafile in index.get('Import', []):
        with open(osp.join(root, metafile)) as f:
            meta = yaml.safe_load(f)
        collections += meta.get('Collections', [])
        for model in meta.get('Models', []):
            tasks = {result.get('Task') for result in model.get('Results', [])}
            if 'Image Classification' not in tasks:
                continue
            model = dict(model, Config=osp.join(root, model['Config']))
            if model.get('Weights'):
                model['Weights'] = OFFICIAL_PREFIX + model['Weights']
            entries.append(model)
    return entries, collections


def register_model_hub() -> bool:
    """Register mmlit's classifiers with mmpretrain's ``ModelHub`` (idempotent); whether mmpretrain and
    mmlit's model index were found."""
    if _REGISTERED:
        return True
    model_index = _model_index()
    try:
        from mmpretrain.apis import ModelHub
    except ImportError:
        return False
    if model_index is None:
        return False
    models, collections = classifier_entries(model_index)
    # ModelHub reads files: a model index of the classifiers alone, the configs at absolute paths
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'model-index.yml')
        with open(path, 'w') as f:
            yaml.safe_dump(dict(Collections=collections, Models=models), f, sort_keys=False)
        try:
            ModelHub.register_model_index(path)  # parsed now, the configs loaded when a model is asked for
        except ValueError as error:  # a name another package registered first: keep theirs, import on
            warnings.warn(f'mmlit could not register its classifiers with mmpretrain\'s model hub ({error}); '
                          'mmpretrain.get_model takes their config paths instead (configs/lit_*_in1k.py)')
            return False
    _REGISTERED.append(model_index)
    return True


_HUB_MODULE = 'mmpretrain.apis'  # where ModelHub, get_model and list_models live


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``mmpretrain.apis`` is first imported, it lets the other finders find
    it and registers the model hub once the module has run."""

    def find_spec(self, fullname, path=None, target=None):
        """``mmpretrain.apis``'s spec with a loader that registers after running it; None otherwise."""
        if fullname != _HUB_MODULE:
            return None
        sys.meta_path.remove(self)  # once, and never for the lookup below
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            register_model_hub()

        spec.loader.exec_module = exec_and_register
        return spec


def register_model_hub_when_imported() -> None:
    """Register with mmpretrain's model hub now if ``mmpretrain.apis`` is loaded, else when it is."""
    if _HUB_MODULE in sys.modules:
        register_model_hub()
    elif not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
