"""Checkpoint loading that never runs code, on every supported torch, for MMEngine checkpoints too.

MMEngine 0.10.x calls ``torch.load`` without ``weights_only``. Before torch 2.6 that means a full unpickle,
which runs whatever a checkpoint carries; since torch 2.6 it means ``weights_only=True``, which rejects
what MMEngine itself writes into a checkpoint's ``meta``:

- ``HistoryBuffer`` objects of the message hub, which hold numpy arrays;
- ``getattr(HistoryBuffer, 'min')`` (and ``max``/``current``/``mean``): ``HistoryBuffer.__getstate__``
  pickles its statistic methods, and pickle protocol 2 writes a method as a call of ``getattr``.

:func:`register_safe_globals` fixes both without turning weights-only loading off:

1. it allow-lists exactly the harmless globals (``HistoryBuffer``; numpy's array/dtype/scalar
   reconstructors, under their numpy 1 and numpy 2 module paths);
2. it makes ``HistoryBuffer`` pickle without its statistic methods (they are restored from the class
   on load anyway), so checkpoints written from now on hold no ``getattr`` at all;
3. for checkpoints written before (by plain MMEngine), it maps the ``builtins.getattr`` global to
   :func:`history_buffer_method`, which resolves nothing but the four statistic methods of
   ``HistoryBuffer`` and refuses everything else. ``getattr`` itself is never allow-listed.

Any other global (an arbitrary object, ``os.system``...) is still refused by torch's weights-only
unpickler with an error naming it.

:func:`safe_load` is ``torch.load`` made safe on every supported torch: weights-only loading with those
globals where torch can be taught them (``add_safe_globals``, torch >= 2.4); on older torch, whose
weights-only allow-list is fixed, a restricted unpickler that resolves torch's own weights-only globals
and the ones above, and refuses every other global with an ``UnpicklingError`` naming it.
:func:`register_safe_loading` makes MMEngine's ``CheckpointLoader`` (``Runner.load_checkpoint``,
``resume``, ``init_cfg=dict(type='Pretrained')``, mmlit's tools) load local files, http(s) URLs, ``s3://``
paths and the model-zoo schemes through :func:`safe_load`.
"""
import _compat_pickle
import codecs
import collections
import io
import os
import os.path as osp
import pickle
import types
from typing import Any, Dict, Optional
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .compat import has_weights_only_allowlist

_STATISTIC_METHODS = ('min', 'max', 'current', 'mean')
_registered = False


def history_buffer_method(owner, name: str):
    """Stand-in for ``getattr`` while unpickling: only ``HistoryBuffer``'s default statistic methods."""
    if owner is HistoryBuffer and name in _STATISTIC_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Refusing getattr({owner!r}, {name!r}) while loading a checkpoint: weights-only loading only '
        f'resolves the statistic methods {_STATISTIC_METHODS} of mmengine HistoryBuffer.')


def _history_buffer_getstate(self) -> dict:
    """``HistoryBuffer`` state without the statistic methods (``__setstate__`` restores the defaults)."""
    return {k: v for k, v in self.__dict__.items() if k != 'statistics_methods'}


def _numpy_globals() -> list:
    """The numpy objects weights-only loading must resolve for the numpy arrays in MMEngine's ``meta``.

    ``ndarray``, ``dtype``, the array and scalar reconstructors under both module paths a checkpoint may
    name (``numpy.core.multiarray`` of numpy 1, ``numpy._core.multiarray`` of numpy 2), and numpy's
    ``*DType`` classes (numpy >= 1.25).

    Returns:
        list: Objects, and (object, 'module.name') pairs for the names other than the object's own.
    """
    from numpy._core import multiarray  # numpy 2 (numpy 1.26 maps it to numpy.core.multiarray)
    reconstruct, scalar = multiarray._reconstruct, multiarray.scalar
    safe = [np.ndarray, np.dtype]
    # numpy pickles its internals under the module path of the numpy that wrote the file
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        safe += [(reconstruct, f'{module}._reconstruct'), (scalar, f'{module}.scalar')]
    # dtype classes (numpy >= 1.25 pickles some dtypes by their class)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')
                 and isinstance(getattr(dtypes, name), type)]
    return safe


def _safe_globals() -> list:
    """The globals mmlit adds to weights-only loading: objects, or (object, 'module.name') pairs."""
    return [HistoryBuffer, *_numpy_globals(), (history_buffer_method, 'builtins.getattr')]


def register_safe_globals() -> None:
    """Make MMEngine checkpoints loadable under weights-only ``torch.load`` (idempotent)."""
    global _registered
    if _registered:
        return
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    if has_weights_only_allowlist():  # torch >= 2.4
        torch.serialization.add_safe_globals(_safe_globals())
    _registered = True


def _restricted_globals() -> Dict[str, Any]:
    """'module.name' -> object: torch's own weights-only globals plus :func:`_safe_globals`."""
    from torch import _weights_only_unpickler
    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    # what newer torch's weights-only unpickler also accepts: bytes inside numpy arrays are pickled as
    # _codecs.encode(str, 'latin1'); schedulers keep their milestones in a Counter
    allowed.update({'_codecs.encode': codecs.encode, 'collections.Counter': collections.Counter,
                    'builtins.set': set, 'builtins.bytearray': bytearray, 'builtins.complex': complex})
    for entry in _safe_globals():
        obj, name = entry if isinstance(entry, tuple) else (entry, f'{entry.__module__}.{entry.__qualname__}')
        allowed[name] = obj
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals (torch < 2.4, see :func:`safe_load`)."""

    allowed: Optional[Dict[str, Any]] = None

    def find_class(self, module: str, name: str):
        """Resolve the global ``module.name`` from the allow-list (built on first use, then shared).

        Python 2 names are first mapped as pickle's own ``find_class`` maps them.

        Raises:
            pickle.UnpicklingError: The global is not allow-listed.
        """
        # Python 2 names (pickle protocols < 3 write __builtin__.getattr): what pickle's own find_class
        # maps them to
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if _RestrictedUnpickler.allowed is None:
            _RestrictedUnpickler.allowed = _restricted_globals()
        obj = _RestrictedUnpickler.allowed.get(f'{module}.{name}')
        if obj is None:
            raise pickle.UnpicklingError(
                f'Refusing to load the global {module}.{name}: mmlit loads checkpoints without running '
                f'code, and this checkpoint holds an object that is not a tensor, a container, a number '
                f'or MMEngine metadata. Load it with torch.load(..., weights_only=False) only if you '
                f'trust its source, and save its state_dict instead.')
        return obj


def _restricted_load(file, **kwargs):
    """``pickle.load`` through :class:`_RestrictedUnpickler`: the ``load`` of the pickle module given to
    ``torch.load``."""
    return _RestrictedUnpickler(file, **kwargs).load()


# what torch.load needs of a pickle module: a name, Unpickler and load
_restricted_pickle = types.ModuleType('mmlit_restricted_pickle')
_restricted_pickle.Unpickler = _RestrictedUnpickler
_restricted_pickle.load = _restricted_load


def safe_load(f, map_location=None) -> Any:
    """``torch.load(f, map_location)`` that never runs code from the file, on every supported torch.

    Tensors, containers, numbers, strings, numpy arrays and MMEngine's message-hub records load; any
    other object raises ``pickle.UnpicklingError`` naming it.
    """
    register_safe_globals()
    if has_weights_only_allowlist():
        return torch.load(f, map_location=map_location, weights_only=True)
    return torch.load(f, map_location=map_location, pickle_module=_restricted_pickle)


def load_from_local(filename: str, map_location=None) -> Any:
    """MMEngine's loader for local paths, through :func:`safe_load`."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_load(filename, map_location=map_location)


def load_from_http(filename: str, map_location=None, model_dir: Optional[str] = None,
                   progress: bool = os.isatty(0)) -> Any:
    """MMEngine's loader for http(s) URLs, through :func:`safe_load`: downloaded once into
    ``model_dir`` (default ``$TORCH_HOME/hub/checkpoints``), by rank 0 first in distributed runs."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(urlparse(filename).path))
    rank, world_size = get_dist_info()

    def fetch():
        if not osp.exists(cached):
            os.makedirs(model_dir, exist_ok=True)
            torch.hub.download_url_to_file(filename, cached, progress=progress)

    if rank == 0:
        fetch()
    if world_size > 1:
        torch.distributed.barrier()
        fetch()
    return safe_load(cached, map_location=map_location)


def load_from_ceph(filename: str, map_location=None, backend: str = 'petrel') -> Any:
    """MMEngine's loader for ``s3://`` and ``petrel://`` paths, through :func:`safe_load`."""
    from mmengine.fileio import get_file_backend
    file_backend = get_file_backend(filename, backend_args={'backend': backend})
    with io.BytesIO(file_backend.get(filename)) as buffer:
        return safe_load(buffer, map_location=map_location)


def load_from_openmmlab(filename: str, map_location=None) -> Any:
    """MMEngine's loader for ``open-mmlab://`` / ``openmmlab://`` model-zoo names, resolved as MMEngine
    resolves them (to a URL, or a file under the MMEngine home), through :func:`load_from_http` /
    :func:`load_from_local` (MMEngine 0.10.2 reads such a file with a plain ``torch.load``)."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    prefix = 'open-mmlab://' if filename.startswith('open-mmlab://') else 'openmmlab://'
    name = filename[len(prefix):]
    name = mmengine_checkpoint.get_deprecated_model_names().get(name, name)
    url = mmengine_checkpoint.get_external_models()[name]
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location=map_location)
    return load_from_local(osp.join(mmengine_checkpoint._get_mmengine_home(), url), map_location)


def register_safe_loading() -> None:
    """:func:`register_safe_globals`, and MMEngine's checkpoint loaders made safe (idempotent).

    Local paths, http(s) URLs, ``s3://``/``petrel://`` paths and ``open-mmlab://`` names load through
    :func:`load_from_local`, :func:`load_from_http`, :func:`load_from_ceph` and
    :func:`load_from_openmmlab`. The other model-zoo schemes (``torchvision://``, ``mmcls://``) resolve a
    name to a URL and then call MMEngine's module-level ``load_from_http``, which is pointed at mmlit's.
    (``pavi://`` remains MMEngine's own.)
    """
    from mmengine.runner import checkpoint as mmengine_checkpoint
    register_safe_globals()
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=load_from_http, force=True)
    CheckpointLoader.register_scheme(prefixes=[r'(\S+\:)?s3://', r'(\S+\:)?petrel://'], loader=load_from_ceph,
                                     force=True)
    CheckpointLoader.register_scheme(prefixes=('open-mmlab://', 'openmmlab://'), loader=load_from_openmmlab,
                                     force=True)
    mmengine_checkpoint.load_from_local = load_from_local
    mmengine_checkpoint.load_from_http = load_from_http
