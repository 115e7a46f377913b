"""Checkpoint loading that never runs code, on every supported torch, for MMEngine checkpoints too.

MMEngine 0.10.x calls ``torch.load`` without ``weights_only``: before torch 2.6 a full unpickle, which runs
whatever a checkpoint carries; from 2.6 on weights-only loading, which rejects what MMEngine itself writes
into ``meta`` (``HistoryBuffer`` objects holding numpy arrays). :func:`safe_load` reads both kinds of file
the same way on every torch: ``torch.load`` with a restricted unpickler (:class:`_SafeUnpickler`) that

- resolves only allow-listed globals: torch's own weights-only globals, ``HistoryBuffer``, and stand-ins
  for numpy's array, dtype and scalar constructors that build plain numeric values only;
- calls only allow-listed callables (REDUCE, NEWOBJ, OBJ, INST), never a class used as a value only;
- applies object state (BUILD) only to instances of a few data classes, each with its own check, never
  to a class, a function or a module;
- restores a ``HistoryBuffer`` without the statistic methods its pickle may carry (MMEngine would merge
  them into the class-wide registry, changing every buffer of the process).

Before unpickling, :func:`safe_load` refuses TorchScript archives (``torch.load`` hands them to
``torch.jit.load``, which runs their code) and reports empty, truncated and corrupt files as a
:class:`CheckpointError` naming the file and what to do. The allow-list belongs to these loads only:
nothing is added to torch's process-wide weights-only allow-list.

:func:`register_safe_loading` points MMEngine's ``CheckpointLoader`` (``load_from``, ``resume``,
``init_cfg=dict(type='Pretrained')``, the inferencers and mmlit's tools) at :func:`safe_load` for local
paths, http(s) URLs, ``s3://`` / ``petrel://`` paths and the model-zoo schemes, refuses ``pavi://``
(which MMEngine loads with a plain ``torch.load``), keeps the config a checkpoint stores from being
executed (:mod:`mmlit.utils.stored_config`) and checks the optimizer state it resumes
(:mod:`mmlit.utils.optimizer_state`).
"""
import _compat_pickle
import codecs
import collections
import io
import math
import os
import os.path as osp
import pickle
import struct
import traceback
import types
import zipfile
from typing import Any, Callable, Dict, Optional
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

_STATISTIC_METHODS = ('min', 'max', 'current', 'mean')
# what MMEngine's HistoryBuffer keeps per instance (its statistic methods are class-wide)
_HISTORY_BUFFER_STATE = ('max_length', '_log_history', '_count_history')
# numpy kinds a checkpoint may hold: bool, signed / unsigned integers, floats, complex numbers
_NUMPY_KINDS = 'biufc'


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded: the message names the file, what is wrong and what to do."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint that holds something loading would have to run or trust (refused)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file at the checkpoint's path."""


def _refuse(what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f'Refusing {what}: mmlit loads checkpoints without running code, and this checkpoint holds more than '
        f'tensors, containers, numbers, strings, plain numpy arrays and MMEngine metadata. Load it with '
        f'torch.load(..., weights_only=False) only if you trust its source, and save its state_dict instead.')


# ---------------------------------------------------------------------------------------- numpy stand-ins
def _plain_dtype(dtype: Any, what: str) -> np.dtype:
    """``dtype`` if it is a plain numeric numpy dtype (no objects, fields or sub-arrays), else refuse."""
    if not (isinstance(dtype, np.dtype) and dtype.kind in _NUMPY_KINDS and not dtype.hasobject
            and dtype.fields is None and dtype.subdtype is None):
        raise _refuse(f'{what} of numpy dtype {dtype!r} (only bool, integer, float and complex dtypes load)')
    return dtype


def _numpy_dtype(spec, align=False, copy=False) -> np.dtype:
    """Stand-in for ``numpy.dtype`` while unpickling: plain numeric dtypes named by a string only.

    Always a fresh copy (as numpy's own pickles ask), so that the BUILD that follows never changes numpy's
    shared dtype instances."""
    if not isinstance(spec, str) or not isinstance(align, bool):
        raise _refuse(f'numpy.dtype({spec!r}, {align!r})')
    try:
        dtype = np.dtype(spec, align, True)
    except TypeError as err:
        raise _refuse(f'numpy.dtype({spec!r}) ({err})') from None
    return _plain_dtype(dtype, 'a value')


def _numpy_reconstruct(subtype, shape, dtype) -> np.ndarray:
    """Stand-in for numpy's ``_reconstruct``: an empty ``ndarray`` for the BUILD that follows to fill."""
    if subtype is not np.ndarray or shape != (0, ) or dtype not in (b'b', 'b'):
        raise _refuse(f'numpy _reconstruct({subtype!r}, {shape!r}, {dtype!r})')
    return np.ndarray((0, ), np.uint8)


def _numpy_scalar(dtype, data) -> np.generic:
    """Stand-in for numpy's ``scalar``: a numeric scalar from its bytes."""
    _plain_dtype(dtype, 'a scalar')
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _refuse(f'a numpy scalar of dtype {dtype} from {type(data).__name__} data')
    return np.frombuffer(data, dtype)[0].copy()


def _set_dtype_state(dtype: np.dtype, state) -> None:
    """BUILD of a dtype: only the state numpy writes for a plain numeric dtype (its byte order may vary)."""
    own = dtype.__reduce__()[2]
    if not (isinstance(state, tuple) and len(state) == len(own) and state[0] == own[0]
            and state[1] in ('<', '>', '|', '=') and state[2:] == own[2:]):
        raise _refuse(f'the numpy dtype state {state!r} (numpy writes {own!r} for {dtype})')
    dtype.__setstate__(state)


def _set_array_state(array: np.ndarray, state) -> None:
    """BUILD of an array: a shape, a plain numeric dtype, the order flag and exactly the bytes they need."""
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
        raise _refuse(f'a numpy array state of the form {type(state).__name__}')
    _, shape, dtype, is_fortran, data = state
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise _refuse(f'a numpy array of shape {shape!r}')
    _plain_dtype(dtype, 'an array')
    if not (isinstance(is_fortran, bool) and isinstance(data, bytes)
            and len(data) == math.prod(shape) * dtype.itemsize):
        raise _refuse(f'a numpy array of shape {shape} and dtype {dtype} from {type(data).__name__} data')
    array.__setstate__(state)


def _set_history_buffer_state(buffer: HistoryBuffer, state) -> None:
    """BUILD of a ``HistoryBuffer``: its own data, without the statistic methods a pickle may carry.

    MMEngine's ``__setstate__`` would merge those into the class-wide registry of every buffer of the
    process; the defaults are the class's own anyway (a custom method is registered by the code using it).
    """
    if not isinstance(state, dict):
        raise _refuse(f'a HistoryBuffer state of type {type(state).__name__}')
    buffer._set_default_statistics()  # as MMEngine's __setstate__: the class's defaults, if missing
    state = {k: v for k, v in state.items() if k != 'statistics_methods'}
    unknown = sorted(set(map(str, state)) - set(_HISTORY_BUFFER_STATE))
    if unknown:
        raise _refuse(f'the HistoryBuffer attributes {unknown} (it keeps {_HISTORY_BUFFER_STATE})')
    for name in ('_log_history', '_count_history'):
        if name in state and not isinstance(state[name], np.ndarray):
            raise _refuse(f'a HistoryBuffer {name} of type {type(state[name]).__name__}')
    if type(state.get('max_length', 0)) is not int:
        raise _refuse('a HistoryBuffer max_length that is not an int')
    buffer.__dict__.update(state)


def _set_ordered_dict_state(mapping: collections.OrderedDict, state) -> None:
    """BUILD of an ``OrderedDict``: instance attributes only (a state dict's ``_metadata``)."""
    if not (isinstance(state, dict) and all(isinstance(k, str) and not k.startswith('__') for k in state)):
        raise _refuse(f'the OrderedDict attributes {list(state) if isinstance(state, dict) else state!r}')
    mapping.__dict__.update(state)


# the classes whose instances a BUILD may fill in, each with its check (exact types: no subclasses)
_BUILDERS: Dict[type, Callable[[Any, Any], None]] = {
    np.ndarray: _set_array_state,
    HistoryBuffer: _set_history_buffer_state,
    collections.OrderedDict: _set_ordered_dict_state,
}


def history_buffer_method(owner, name: str):
    """Stand-in for ``getattr`` while unpickling: only ``HistoryBuffer``'s default statistic methods.

    Checkpoints of plain MMEngine pickle them (``getattr(HistoryBuffer, 'min')``...); they are dropped
    when the buffer is restored (:func:`_set_history_buffer_state`)."""
    if owner is HistoryBuffer and name in _STATISTIC_METHODS:
        return getattr(HistoryBuffer, name)
    raise _refuse(f'getattr({owner!r}, {name!r}) (only the statistic methods {_STATISTIC_METHODS} of '
                  f'mmengine HistoryBuffer resolve)')


def _latin1_encode(text, encoding='latin1') -> bytes:
    """Stand-in for ``_codecs.encode``: how protocol-2 pickles write bytes (numpy's array data)."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise _refuse(f'_codecs.encode of {type(text).__name__} as {encoding!r}')
    return codecs.encode(text, encoding)


def _tensor_from_type(func, new_type, args, state):
    """Stand-in for ``torch._tensor._rebuild_from_type_v2`` (a tensor with Python attributes): ``func``
    must be one of torch's tensor rebuild functions and ``new_type`` a tensor class."""
    rebuilds = {obj for name, obj in _torch_globals().items() if name.startswith('torch._utils._rebuild_')}
    if func not in rebuilds or not (isinstance(new_type, type) and issubclass(new_type, torch.Tensor)):
        raise _refuse(f'_rebuild_from_type_v2({func!r}, {new_type!r})')
    from torch._tensor import _rebuild_from_type_v2
    return _rebuild_from_type_v2(func, new_type, args, state)


def _torch_globals() -> Dict[str, Any]:
    """'module.name' -> object: what torch's own weights-only unpickler resolves (tensor rebuild functions,
    storages, dtypes, ``torch.Size``, ``OrderedDict``...), for the torch in use.

    Read from torch's (private, but present since torch 1.13) weights-only unpickler, so that every
    serialization format of that torch loads.
    """
    from torch import _weights_only_unpickler
    return dict(_weights_only_unpickler._get_allowed_globals())


def _allowed_globals() -> Dict[str, Any]:
    """'module.name' -> the object :class:`_SafeUnpickler` resolves it to."""
    allowed = _torch_globals()
    allowed.update({
        '_codecs.encode': _latin1_encode,
        'torch._tensor._rebuild_from_type_v2': _tensor_from_type,
        'collections.Counter': collections.Counter,
        'builtins.set': set,
        'builtins.frozenset': frozenset,
        'builtins.bytes': bytes,
        'builtins.bytearray': bytearray,
        'builtins.complex': complex,
        'builtins.getattr': history_buffer_method,
        'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer,
        'numpy.ndarray': np.ndarray,
        'numpy.dtype': _numpy_dtype,
    })
    # numpy pickles its internals under the module path of the numpy that wrote the file
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed[f'{module}._reconstruct'] = _numpy_reconstruct
        allowed[f'{module}.scalar'] = _numpy_scalar
    return allowed


def _value_only(name: str, obj: Any) -> bool:
    """Whether an allow-listed global is resolved as a value only, never called or instantiated:
    ``numpy.ndarray`` (an argument of ``_reconstruct``) and torch's tensor classes (``torch.Tensor``,
    ``torch.FloatTensor``, ``torch.sparse.FloatTensor``..., whose legacy constructors build unchecked data)."""
    return obj is np.ndarray or (isinstance(obj, type) and issubclass(obj, torch.Tensor)
                                 and obj is not torch.nn.Parameter) or name.endswith('Tensor')
# classes NEWOBJ may instantiate (``cls.__new__(cls)``, no __init__), before the BUILD that fills them in
_NEWOBJ_CLASSES = (HistoryBuffer, collections.OrderedDict)


# what SETITEM(S) may write into (exact types: a tensor or an array has __setitem__ too)
_MAPPINGS = (dict, collections.OrderedDict, collections.Counter)


def _check_container(obj, types_: tuple, opcode: str):
    if type(obj) not in types_:
        raise _refuse(f'{opcode} on {type(obj).__name__} (only {", ".join(t.__name__ for t in types_)})')
    return obj


class _Dispatch(dict):
    """Pickle's opcode table: an opcode that is not in it is a corrupt file, not a ``KeyError``."""

    def __missing__(self, opcode: int):
        raise pickle.UnpicklingError(f'invalid pickle opcode {bytes([opcode])!r}')


class _SafeUnpickler(pickle._Unpickler):
    """Python's own unpickler with every opcode that resolves, calls or updates an object restricted.

    The pure-Python unpickler (not the C one) is used so that BUILD can be checked: the C unpickler lets a
    subclass restrict only ``find_class``.
    """

    allowed: Optional[Dict[str, Any]] = None  # built on first use
    callables: frozenset = frozenset()

    def find_class(self, module: str, name: str):
        """Resolve the global ``module.name`` from the allow-list (Python 2 names mapped as pickle does)."""
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if _SafeUnpickler.allowed is None:
            _SafeUnpickler.allowed = _allowed_globals()
            _SafeUnpickler.callables = frozenset(
                id(obj) for name, obj in _SafeUnpickler.allowed.items() if callable(obj) and not _value_only(name, obj))
        obj = _SafeUnpickler.allowed.get(f'{module}.{name}')
        if obj is None:
            raise _refuse(f'the global {module}.{name}')
        return obj

    def _fresh(self, obj):
        """Note ``obj`` (just made by a call or NEWOBJ) as one a BUILD may fill in, once."""
        if not hasattr(self, '_unbuilt'):
            self._unbuilt = {}
        if isinstance(obj, np.dtype) or type(obj) in _BUILDERS:
            self._unbuilt[id(obj)] = obj  # held, so that the id stays this object's
        return obj

    def _call(self, func, args, kwargs=None):
        if id(func) not in self.callables:
            raise _refuse(f'a call of {func!r}')
        try:
            result = self._fresh(func(*args, **(kwargs or {})))
            if torch._utils._sparse_tensors_to_validate:
                # checked now, before anything can use or copy it (torch checks them after the whole load)
                torch._utils._validate_loaded_sparse_tensors()
            return result
        except (RuntimeError, ValueError, TypeError, IndexError, OverflowError) as err:
            if isinstance(err, UnsafeCheckpointError):
                raise
            # torch's checks of what a rebuild describes (sizes, strides, sparse indices...)
            what = getattr(func, '__qualname__', type(func).__name__)
            raise _refuse(f'{what}() of invalid data ({str(err).splitlines()[0] if str(err) else type(err).__name__})'
                          ) from None

    def load_reduce(self):
        """REDUCE: ``func(*args)`` for allow-listed callables only."""
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def _new(self, cls, args, kwargs=None):
        if cls not in _NEWOBJ_CLASSES or args or kwargs:
            raise _refuse(f'{cls!r}.__new__ with arguments {args!r}')
        self.append(self._fresh(cls.__new__(cls)))

    def load_newobj(self):
        """NEWOBJ: ``cls.__new__(cls)`` of the few classes whose state a BUILD then fills in."""
        args = self.stack.pop()
        self._new(self.stack.pop(), args)

    def load_newobj_ex(self):
        """NEWOBJ_EX: as NEWOBJ."""
        kwargs = self.stack.pop()
        args = self.stack.pop()
        self._new(self.stack.pop(), args, kwargs)

    def _instantiate(self, klass, args):
        """OBJ and INST: as REDUCE."""
        self.append(self._call(klass, args))

    def load_setitem(self):
        """SETITEM: only into a dict, an OrderedDict or a Counter."""
        value = self.stack.pop()
        key = self.stack.pop()
        _check_container(self.stack[-1], _MAPPINGS, 'SETITEM')[key] = value

    def load_setitems(self):
        """SETITEMS: as SETITEM."""
        items = self.pop_mark()
        mapping = _check_container(self.stack[-1], _MAPPINGS, 'SETITEMS')
        for i in range(0, len(items), 2):
            mapping[items[i]] = items[i + 1]

    def load_append(self):
        """APPEND: only to a list."""
        value = self.stack.pop()
        _check_container(self.stack[-1], (list, ), 'APPEND').append(value)

    def load_appends(self):
        """APPENDS: as APPEND."""
        items = self.pop_mark()
        _check_container(self.stack[-1], (list, ), 'APPENDS').extend(items)

    def load_additems(self):
        """ADDITEMS: only to a set."""
        items = self.pop_mark()
        _check_container(self.stack[-1], (set, ), 'ADDITEMS').update(items)

    def load_build(self):
        """BUILD: the state of an instance of one of :data:`_BUILDERS`' classes, checked by its builder."""
        state = self.stack.pop()
        inst = self.stack[-1]
        if getattr(self, '_unbuilt', {}).pop(id(inst), None) is not inst:
            # a second BUILD would change an object already in use (numpy frees an array's data that a
            # tensor may share), and any other object is not data this unpickler made
            shown = repr(inst) if not isinstance(inst, np.ndarray) else f'an array of shape {inst.shape}'
            raise _refuse(f'setting the state of {shown[:100]}, which is not a new object of one of the data '
                          'classes (or is set twice)')
        if isinstance(inst, np.dtype):  # numpy's dtype classes are per dtype (Float64DType...)
            return _set_dtype_state(inst, state)
        builder = _BUILDERS.get(type(inst))
        if builder is None:
            raise _refuse(f'setting the state of {inst!r} (an object of type {type(inst).__name__})')
        builder(inst, state)

    dispatch = _Dispatch(pickle._Unpickler.dispatch)
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build


def _safe_pickle_load(file, **kwargs):
    """``pickle.load`` through :class:`_SafeUnpickler` (the ``load`` of the pickle module torch is given)."""
    return _SafeUnpickler(file, **kwargs).load()


# what torch.load needs of a pickle module: Unpickler and load
_safe_pickle = types.ModuleType('mmlit_safe_pickle')
_safe_pickle.Unpickler = _SafeUnpickler
_safe_pickle.load = _safe_pickle_load


# ---------------------------------------------------------------------------------------- the checks
def _describe(f) -> str:
    return os.fspath(f) if isinstance(f, (str, os.PathLike)) else 'the checkpoint'


def _corrupt(name: str, reason: str) -> CheckpointError:
    return CheckpointError(f'{name} is truncated or corrupt ({reason}): re-download or re-save it.')


def _check_file(f, name: str) -> bool:
    """Refuse TorchScript archives and report files that are no checkpoint, before ``torch.load`` sees them;
    whether the file is in torch's zip format.

    ``torch.load`` reads a file that starts as a zip archive as the zip format, which it hands to
    ``torch.jit.load`` when it is a TorchScript archive (``constants.pkl``, ``code/``): that would run
    the archive's code, so it is refused here.
    """
    if isinstance(f, (str, os.PathLike)):
        if not osp.isfile(f):
            raise CheckpointNotFoundError(f'{name}: no such file; check the path (relative paths start at '
                                          f'{os.getcwd()}).')
        if osp.getsize(f) == 0:
            raise CheckpointError(f'{name} is empty (0 bytes): the download or save did not finish; '
                                  're-download or re-save it.')
        with open(f, 'rb') as file:
            return _check_archive(file, name)
    if hasattr(f, 'seek') and hasattr(f, 'read'):
        start = f.tell()
        try:
            return _check_archive(f, name)
        finally:
            f.seek(start)
    return False


def _check_archive(file, name: str) -> bool:
    start = file.tell()
    if file.read(4) != b'PK\x03\x04':  # not torch's zip format: the legacy format, read by the unpickler
        return False
    file.seek(start)
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise _corrupt(name, f'not a complete zip archive: {err}') from None
    file.seek(start)
    try:  # what torch.load itself reads (Python's zipfile may find another central directory)
        records = set(torch._C.PyTorchFileReader(file).get_all_records())
    except RuntimeError as err:
        raise _corrupt(name, str(err).splitlines()[0]) from None
    entries = {entry.split('/', 1)[-1] for entry in names}
    if {'constants.pkl', 'bytecode.pkl'} & (records | entries) or any(
            r.startswith('code/') for r in records | entries):
        raise UnsafeCheckpointError(
            f'{name} is a TorchScript archive (a compiled program, not a checkpoint): mmlit refuses it, as '
            f'loading it runs its code. Load it with torch.jit.load only if you trust its source, or save the '
            f"model's state_dict with torch.save instead.")
    if records != entries:
        raise UnsafeCheckpointError(f'{name} is a zip archive with two different tables of contents (zip '
                                    'readers disagree on what it holds): refused, re-save it.')
    if 'data.pkl' not in records:
        raise _corrupt(name, 'a zip archive without the data.pkl of a PyTorch checkpoint')
    return True


# what unpickling arbitrary bytes raises, besides pickle's own error
_READ_ERRORS = (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, struct.error,
                IndexError, ValueError, OverflowError, MemoryError)


def safe_load(f, map_location=None, name: Optional[str] = None, mmap: bool = False) -> Any:
    """``torch.load(f, map_location)`` that never runs code from the file, on every supported torch.

    Tensors, containers, numbers, strings, plain numeric numpy arrays and MMEngine's message-hub records
    load. Anything else raises :class:`UnsafeCheckpointError` (a ``pickle.UnpicklingError``) naming it; a
    missing, empty, truncated or corrupt file raises :class:`CheckpointError` saying what to do.

    Args:
        f: A path or a binary file object.
        map_location: As for ``torch.load``.
        name (str, optional): What the messages call the file (default: the path).
        mmap (bool): Memory-map the tensors' data instead of reading it, where ``f`` is a path to a file in
            torch's zip format (others are read).
    """
    name = name or _describe(f)
    mmap = _check_file(f, name) and mmap and isinstance(f, (str, os.PathLike))
    try:
        # sparse tensors are checked as they are built (torch checks them only for weights_only=True)
        with torch.sparse.check_sparse_tensor_invariants(True):
            return torch.load(f, map_location=map_location, pickle_module=_safe_pickle, weights_only=False,
                              **(dict(mmap=True) if mmap else {}))
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(f'{name}: {err}') from None
    except _READ_ERRORS as err:
        # what unpickling bytes that are no pickle raises (the legacy format: no zip archive around it)
        raise _corrupt(name, f'{type(err).__name__}: {err}' if str(err) else type(err).__name__) from None
    except RuntimeError as err:
        # the zip reader's and the legacy reader's errors; others (a CUDA map_location without CUDA...) are
        # the caller's to see
        if any(text in str(err) for text in ('PytorchStreamReader', 'zip archive', 'magic number')):
            raise _corrupt(name, str(err).splitlines()[0]) from None
        if any(frame.name == '_validate_loaded_sparse_tensors' for frame in traceback.extract_tb(err.__traceback__)):
            raise UnsafeCheckpointError(f'{name}: Refusing a sparse tensor of invalid data ('
                                        f'{str(err).splitlines()[0]}): using it would read or write out of bounds.'
                                        ) from None
        if 'explicit pickle_module' in str(err):  # TORCH_FORCE_WEIGHTS_ONLY_LOAD is set
            raise CheckpointError(f'{name}: TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, and torch then refuses '
                                  "mmlit's restricted unpickler; unset it (mmlit's loads run no code without "
                                  'it).') from None
        raise


def check_checkpoint(filename: str) -> Optional[Any]:
    """Raise :class:`CheckpointError` now when the checkpoint ``filename`` names cannot load.

    A local file is read through, its tensors memory-mapped where the format allows (not read), and
    returned; an ``open-mmlab://`` name must be one MMEngine knows; other URLs are checked when they are
    loaded (None is returned for them).
    """
    if filename.startswith(('open-mmlab://', 'openmmlab://')):
        _openmmlab_url(filename)
    elif '://' not in filename:
        return safe_load(osp.expanduser(filename), map_location='cpu', name=filename, mmap=True)
    return None


# ---------------------------------------------------------------------------------------- MMEngine's loaders
def _history_buffer_getstate(self) -> dict:
    """``HistoryBuffer`` state without the statistic methods (restored from the class on load)."""
    return {k: v for k, v in self.__dict__.items() if k != 'statistics_methods'}


def load_from_local(filename: str, map_location=None) -> Any:
    """MMEngine's loader for local paths, through :func:`safe_load`."""
    return safe_load(osp.expanduser(filename), map_location=map_location)


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
    return safe_load(cached, map_location=map_location, name=f'{cached} (downloaded from {filename}; '
                     'delete it to download it again)')


def load_from_ceph(filename: str, map_location=None, backend: str = 'petrel') -> Any:
    """MMEngine's loader for ``s3://`` and ``petrel://`` paths, through :func:`safe_load`."""
    from mmengine.fileio import get_file_backend
    file_backend = get_file_backend(filename, backend_args={'backend': backend})
    with io.BytesIO(file_backend.get(filename)) as buffer:
        return safe_load(buffer, map_location=map_location, name=filename)


def load_from_openmmlab(filename: str, map_location=None) -> Any:
    """MMEngine's loader for ``open-mmlab://`` / ``openmmlab://`` model-zoo names, resolved as MMEngine
    resolves them (to a URL, or a file under the MMEngine home), through :func:`load_from_http` /
    :func:`load_from_local` (MMEngine 0.10.2 reads such a file with a plain ``torch.load``)."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    url = _openmmlab_url(filename)
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location=map_location)
    return load_from_local(osp.join(mmengine_checkpoint._get_mmengine_home(), url), map_location)


def _openmmlab_url(filename: str) -> str:
    """What MMEngine resolves an ``open-mmlab://`` name to: a URL, or a path under the MMEngine home."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    prefix = 'open-mmlab://' if filename.startswith('open-mmlab://') else 'openmmlab://'
    name = filename[len(prefix):]
    name = mmengine_checkpoint.get_deprecated_model_names().get(name, name)
    models = mmengine_checkpoint.get_external_models()
    if name not in models:
        raise CheckpointError(f'{filename}: {name!r} is not a model-zoo name MMEngine knows (e.g. '
                              f'{", ".join(sorted(models)[:3])}); check the spelling, or pass a path or URL.')
    return models[name]


def load_from_pavi(filename: str, map_location=None) -> Any:
    """``pavi://`` paths are refused: MMEngine reads them with a plain ``torch.load``, which can run code."""
    raise CheckpointError(f'{filename}: mmlit does not load pavi:// checkpoints (MMEngine reads them with a '
                          'plain torch.load, which can run code); download the file and pass its path.')


def register_safe_loading() -> None:
    """Make MMEngine's checkpoint loaders safe (idempotent).

    Local paths, http(s) URLs, ``s3://``/``petrel://`` paths and ``open-mmlab://`` names load through
    :func:`load_from_local`, :func:`load_from_http`, :func:`load_from_ceph` and
    :func:`load_from_openmmlab`; ``torchvision://`` and ``mmcls://`` resolve a name to a URL and then call
    MMEngine's module-level ``load_from_http``, which is pointed at mmlit's; ``pavi://`` is refused.
    ``HistoryBuffer`` pickles without its statistic methods from now on; ``Runner.resume`` reads the config
    a checkpoint stores without executing it and the inferencers refuse to build from it
    (:func:`mmlit.utils.stored_config.register_stored_config_parsing`); the optimizer state resume loads is
    checked against the optimizer (:func:`mmlit.utils.optimizer_state.register_optimizer_state_checks`).
    """
    from mmengine.runner import checkpoint as mmengine_checkpoint

    from .optimizer_state import register_optimizer_state_checks
    from .stored_config import register_stored_config_parsing
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=load_from_http, force=True)
    CheckpointLoader.register_scheme(prefixes=[r'(\S+\:)?s3://', r'(\S+\:)?petrel://'], loader=load_from_ceph,
                                     force=True)
    CheckpointLoader.register_scheme(prefixes=('open-mmlab://', 'openmmlab://'), loader=load_from_openmmlab,
                                     force=True)
    CheckpointLoader.register_scheme(prefixes='pavi://', loader=load_from_pavi, force=True)
    mmengine_checkpoint.load_from_local = load_from_local
    mmengine_checkpoint.load_from_http = load_from_http
    register_stored_config_parsing()
    register_optimizer_state_checks()
