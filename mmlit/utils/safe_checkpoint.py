"""Let torch >= 2.6's weights-only ``torch.load`` read MMEngine checkpoints, without running code.

MMEngine 0.10.x calls ``torch.load`` without ``weights_only``; since torch 2.6 that means
``weights_only=True``, which rejects what MMEngine itself writes into a checkpoint's ``meta``:

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
"""
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

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
    core = np._core if hasattr(np, '_core') else np.core
    reconstruct, scalar = core.multiarray._reconstruct, core.multiarray.scalar
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


def register_safe_globals() -> None:
    """Make MMEngine checkpoints loadable under weights-only ``torch.load`` (idempotent)."""
    global _registered
    if _registered:
        return
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    if hasattr(torch.serialization, 'add_safe_globals'):  # torch >= 2.4
        torch.serialization.add_safe_globals([HistoryBuffer, *_numpy_globals(),
                                              (history_buffer_method, 'builtins.getattr')])
    _registered = True
