"""The attack matrix of mmlit's checkpoint loading.

Each row is a file built as an attacker who hands a user a checkpoint would build it, the way the user loads
it, what mmlit must answer (a refusal, or a harmless load), and the check that the payload's side effect
did not happen. A new hole is one more row. The rows run on every supported torch (CI: the newest and the
floor stack).
"""
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader
from payloads import RunsCode as _RunsCode  # tests/helpers
from toy_runner import runner as _runner  # tests/helpers

import mmlit  # noqa: F401  (registers the safe loaders)
from mmlit.utils import safe_load

REPO = Path(__file__).resolve().parents[2]
TOY_RETINANET = REPO / 'configs' / 'toy' / 'retinanet_lit_ti_fpn_toy_shapes.py'


# ------------------------------------------------------------------------------------ how files are built
def _with_pickle(path: Path, data_pkl: bytes) -> Path:
    """A checkpoint in torch's zip format whose ``data.pkl`` is ``data_pkl`` (hand-written opcodes)."""
    base = path.with_suffix('.base')
    torch.save({'weight': torch.ones(1)}, base)
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            dst.writestr(info, data_pkl if info.filename.endswith('data.pkl') else src.read(info.filename))
    return path


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b'X' + struct.pack('<I', len(data)) + data


def _build_on_global(module: str, name: str, attribute: str, value: bytes) -> bytes:
    """GLOBAL module.name, then BUILD with the slot state {attribute: value}: setattr on the global."""
    return (b'\x80\x02c' + f'{module}\n{name}\n'.encode() + b'N}' + _unicode(attribute) + value + b's\x86b.')


class _ObjectDtypeWithoutFlags:
    """``np.dtype('O')`` with its flags cleared: numpy then takes an object array for plain data."""

    def __reduce__(self):
        return (np.dtype, ('O', False, True), (3, '|', None, None, None, -1, -1, 0))


class _ObjectArrayOverBytes:
    """An object array whose one element is the pointer 0x4141414141414141 (touching it segfaults)."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __reduce__(self):
        from numpy._core import multiarray
        return (multiarray._reconstruct, (np.ndarray, (0, ), b'b'), (1, (1, ), self.dtype, False, b'A' * 8))


class _NdarrayCall:
    """``numpy.ndarray((1,), 'O', raw bytes)``: the same array through the class itself."""

    def __reduce__(self):
        return (np.ndarray, ((1, ), 'O', b'A' * 8))


class _TensorOfNdarray:
    """``_rebuild_from_type_v2`` asked to call ``numpy.ndarray`` for it."""

    def __reduce__(self):
        from torch._tensor import _rebuild_from_type_v2
        return (_rebuild_from_type_v2, (np.ndarray, np.ndarray, ((1, ), 'O', b'A' * 8), {}))


def _torchscript_archive(path: Path, marker: Path) -> Path:
    """A TorchScript archive whose scripted ``__setstate__`` writes ``marker`` (a file of its choosing)."""
    code = textwrap.dedent(f"""
        from typing import Tuple
        import torch

        class Payload(torch.nn.Module):
            def __init__(self, path: str):
                super().__init__()
                self.path = path
                self.buf = torch.zeros(1)

            @torch.jit.export
            def __getstate__(self) -> Tuple[str, bool]:
                return (self.path, self.training)

            @torch.jit.export
            def __setstate__(self, state: Tuple[str, bool]) -> None:
                self.path = state[0]
                self.training = state[1]
                self.buf = torch.from_file(state[0], True, 8, dtype=torch.uint8)
                self.buf.fill_(65)

            def forward(self, x):
                return x

        torch.jit.script(Payload({str(marker)!r})).save({str(path)!r})
    """)
    script = path.with_suffix('.py')
    script.write_text(code)  # TorchScript reads the class's source from a file
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True)
    marker.unlink(missing_ok=True)  # torch.jit.script itself ran nothing; be sure
    return path


def _second_central_directory(path: Path, marker: Path) -> Path:
    """The TorchScript archive with a second, harmless table of contents appended, and an end record whose
    offset points at the real one: Python's zipfile reads the harmless table, torch's reader the real one."""
    archive = _torchscript_archive(path.with_suffix('.ts'), marker).read_bytes()
    zip64 = archive.rfind(b'PK\x06\x06')  # torch writes a zip64 end record
    count, size, offset = struct.unpack('<QQQ', archive[zip64 + 32:zip64 + 56])

    def entry(name, comment=b''):
        return struct.pack(zipfile.structCentralDir, b'PK\x01\x02', 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, len(name), 0,
                           len(comment), 0, 0, 0, 0) + name + comment

    pad = max(0, size - 2 * 46 - len(b'archive/data.pkl') - len(b'archive/version'))
    table = entry(b'archive/data.pkl') + entry(b'archive/version', b'x' * pad)
    end = struct.pack('<4s4H2LH', b'PK\x05\x06', 0, 0, count, count, len(table), offset, 0)
    path.write_bytes(archive + table + end)
    assert zipfile.ZipFile(path).namelist() == ['archive/data.pkl', 'archive/version']
    return path


class _SparseOutOfRange:
    """A sparse COO tensor whose one index is 10**9 in a tensor of size 1 (to_dense() writes out of bounds)."""

    def __init__(self, indices=None):
        self.indices = torch.tensor([[10**9]]) if indices is None else indices

    def __reduce__(self):
        return (torch._utils._rebuild_sparse_tensor, (torch.sparse_coo, (self.indices, torch.ones(1), (1, ), True)))


def _array_built_twice(path: Path, under_a_tensor: bool = True) -> Path:
    """A 64 MiB numpy array shared with a tensor (``_rebuild_device_tensor_from_numpy``; torch < 2.2 has no
    such rebuild and refuses it), then BUILT again with a 1-byte state: numpy frees the buffer the tensor
    still points at. Without the tensor: the same array in a dict, BUILT twice."""
    n = 64 << 20

    def glob(module, name):
        return b'c' + f'{module}\n{name}\n'.encode()

    def state(size):
        return (b'(K\x01J' + struct.pack('<i', size) + b'\x85' + glob('numpy', 'dtype') + _unicode('u1')
                + b'\x89\x88\x87R' + b'\x89B' + struct.pack('<I', size) + b'A' * size + b't')

    share = (glob('torch._utils', '_rebuild_device_tensor_from_numpy') + b'(h\x00' + glob('torch', 'uint8')
             + _unicode('cpu') + b'\x89tR') if under_a_tensor else b'h\x00'
    data = (b'\x80\x02' + glob('numpy._core.multiarray', '_reconstruct') + glob('numpy', 'ndarray')
            + b'K\x00\x85C\x01b\x87R' + state(n) + b'bq\x000' + b'}' + _unicode('w') + share + b's'
            + b'h\x00' + state(1) + b'b0.')
    return _with_pickle(path, data)


class _SetitemIntoTensor:
    """A tensor, then SETITEMS into it (pickle's fifth reduce value): writes a checkpoint's values into an
    object that is no dict (the way an index tensor is changed after torch has checked it)."""

    def __reduce__(self):
        rebuild, args = torch.ones(2).__reduce_ex__(2)[:2]
        return (rebuild, args, None, None, iter([(0, 5.0)]))


class _Rebuild:
    """A call of torch's ``_rebuild_device_tensor_from_cpu_tensor`` (``tensor.to(dtype)``), optionally
    followed by SETITEMS into its result (pickle's fifth reduce value)."""

    def __init__(self, tensor, dtype, items=None):
        self.tensor, self.dtype, self.items = tensor, dtype, items

    def __reduce__(self):
        args = (torch._utils._rebuild_device_tensor_from_cpu_tensor, (self.tensor, self.dtype, 'cpu', False))
        return args if self.items is None else args + (None, None, iter(self.items))


def _sparse_laundered(path: Path) -> Path:
    """A sparse tensor with an index out of range, copied (``.to(float64)``) while it is invalid, its index
    then set right by SETITEMS into the index tensor, so that torch's end-of-load check passes."""
    if not hasattr(torch._utils, '_rebuild_device_tensor_from_cpu_tensor'):
        pytest.skip('torch < 2.2 has no _rebuild_device_tensor_from_cpu_tensor (the setitem row covers it)')
    indices = torch.tensor([[10**9]])
    sparse = _SparseOutOfRange(indices)
    torch.save({'state_dict': {'w': _Rebuild(sparse, torch.float64)},
                'meta': [sparse, _Rebuild(indices, torch.int64, [((0, 0), 0)])]}, path)
    return path


def _hostile_optimizer_state(tmp_path: Path) -> Path:
    """A real checkpoint whose AdamW state is fused, with 1-element moments for a 4-element weight: fused
    AdamW would write 4 elements into each (the bytes after them in their shared buffer)."""
    path = _trained_checkpoint(tmp_path, 'gpu_ids = [0]')
    checkpoint = safe_load(path)
    checkpoint['optimizer']['param_groups'][0].update(fused=True, foreach=False)
    buffer = torch.zeros(64)
    checkpoint['optimizer']['state'][0].update(exp_avg=buffer[0:1], exp_avg_sq=buffer[32:33])
    torch.save(checkpoint, path)
    return path


def _plain_mmengine(path: Path, body: str) -> Path:
    """A checkpoint written by plain MMEngine (mmlit not imported), after ``body`` ran in that process."""
    code = textwrap.dedent("""
        import sys, torch
        from mmengine.logging import HistoryBuffer, MessageHub
        {body}
        hub = MessageHub.get_instance('writer')
        hub.update_scalar('train/loss', 3.0)
        torch.save(dict(meta=dict(epoch=1), message_hub=hub.state_dict(), state_dict={{}}), {path!r})
        assert 'mmlit' not in sys.modules
    """).format(body=body, path=str(path))
    subprocess.run([sys.executable, '-c', code], check=True)
    return path


def _trained_checkpoint(tmp_path: Path, config: str) -> Path:
    """A real checkpoint of a 2-iteration run, its ``meta['config']`` replaced by ``config``."""
    _runner(tmp_path, max_iters=2).train()
    path = tmp_path / 'iter_2.pth'
    checkpoint = safe_load(path)
    checkpoint['meta']['config'] = config
    torch.save(checkpoint, path)
    return path


def _inferencer_checkpoint(path: Path, cfg_text: str) -> Path:
    """A checkpoint with no weights beyond the model's and the config ``cfg_text`` in its message hub."""
    torch.save(dict(state_dict={}, meta=dict(), message_hub=dict(log_scalars={}, runtime_info=dict(cfg=cfg_text),
                                                                resumed_keys={})), path)
    return path


def _payload(marker: Path) -> str:
    return f"\n_x = __import__('os').system('touch {marker}')\n"


# ------------------------------------------------------------------------------------ how users load them
def _load(path):
    return CheckpointLoader.load_checkpoint(str(path), map_location='cpu')


def _resume(path):
    runner = _runner(path.parent, max_iters=4, resume=True)
    runner._load_from = str(path)
    runner.train()
    return runner


def _load_and_use(path):
    """Load, then touch every tensor and array (memory errors show on first use)."""
    checkpoint = _load(path)
    for value in (checkpoint.get('state_dict') or checkpoint).values():
        if isinstance(value, torch.Tensor):
            value.to_dense().sum() if value.is_sparse else value.sum()
    return checkpoint


def _det_inferencer(path):
    from mmdet.apis import DetInferencer
    return DetInferencer(model=None, weights=str(path), device='cpu', show_progress=False)


# ------------------------------------------------------------------------------------ what must not happen
def _no_marker(tmp_path: Path, _):
    assert not (tmp_path / 'PWNED').exists(), 'loading the checkpoint ran its code'


def _defaults_unchanged(tmp_path: Path, _):
    assert torch._utils._rebuild_tensor_v2.__defaults__ == (None, ), 'a checkpoint changed a function of torch'


def _statistics_unchanged(tmp_path: Path, loaded):
    assert HistoryBuffer([1, 2, 3, 10], [1, 1, 1, 1]).statistics('mean') == 4.0, 'a checkpoint changed every buffer'
    assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.mean
    if loaded is not None:
        assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 3.0


def _resumed(tmp_path: Path, runner):
    _no_marker(tmp_path, runner)
    assert runner.iter == 4, 'the resumed run did not train on'


@dataclass
class Attack:
    """One row: ``build(tmp_path)`` writes the file, ``load(path)`` is what the user runs, ``refusal`` the
    error it must raise (None: it loads), ``harmless(tmp_path, result)`` checks no side effect happened."""
    build: Callable[[Path], Path]
    load: Callable = _load
    refusal: Optional[Tuple[type, str]] = None
    harmless: Callable = _no_marker


ATTACKS = {
    'reduce-os-system': Attack(
        lambda t: (torch.save({'meta': _RunsCode(t / 'PWNED')}, t / 'a.pth'), t / 'a.pth')[1],
        refusal=(pickle.UnpicklingError, 'the global posix.system')),
    'torchscript-setstate-writes-a-file': Attack(
        lambda t: _torchscript_archive(t / 'a.pt', t / 'PWNED'),
        refusal=(pickle.UnpicklingError, 'TorchScript archive')),
    'numpy-object-dtype-flags-cleared': Attack(
        lambda t: (torch.save({'meta': _ObjectArrayOverBytes(_ObjectDtypeWithoutFlags())}, t / 'a.pth'),
                   t / 'a.pth')[1],
        refusal=(pickle.UnpicklingError, "numpy dtype dtype\\('O'\\)")),
    'numpy-object-array': Attack(
        lambda t: (torch.save({'meta': _ObjectArrayOverBytes(np.dtype('O'))}, t / 'a.pth'), t / 'a.pth')[1],
        refusal=(pickle.UnpicklingError, "numpy dtype dtype\\('O'\\)")),
    'numpy-ndarray-called': Attack(
        lambda t: (torch.save({'meta': _NdarrayCall()}, t / 'a.pth'), t / 'a.pth')[1],
        refusal=(pickle.UnpicklingError, "a call of <class 'numpy.ndarray'>")),
    'tensor-rebuild-calls-ndarray': Attack(
        lambda t: (torch.save({'meta': _TensorOfNdarray()}, t / 'a.pth'), t / 'a.pth')[1],
        refusal=(pickle.UnpicklingError, '_rebuild_from_type_v2')),
    'build-sets-torch-function-defaults': Attack(
        lambda t: _with_pickle(t / 'a.pth', _build_on_global('torch._utils', '_rebuild_tensor_v2', '__defaults__',
                                                              b'K\x01\x85')),
        refusal=(pickle.UnpicklingError, 'setting the state of <function _rebuild_tensor_v2'),
        harmless=_defaults_unchanged),
    'build-sets-history-buffer-class-state': Attack(
        lambda t: _with_pickle(t / 'a.pth', _build_on_global('mmengine.logging.history_buffer', 'HistoryBuffer',
                                                              '_statistics_methods', b'}')),
        refusal=(pickle.UnpicklingError, 'setting the state of <class'),
        harmless=_statistics_unchanged),
    'history-buffer-statistics-into-the-class': Attack(
        lambda t: _plain_mmengine(t / 'a.pth', "HistoryBuffer._statistics_methods['mean'] = HistoryBuffer.max"),
        harmless=_statistics_unchanged),
    'resume-executes-stored-config': Attack(
        lambda t: _trained_checkpoint(t, 'gpu_ids = [0]' + _payload(t / 'PWNED')),
        load=_resume, harmless=_resumed),
    'inferencer-executes-stored-config': Attack(
        lambda t: _inferencer_checkpoint(t / 'a.pth', "model = dict(type='RetinaNet')" + _payload(t / 'PWNED')),
        load=_det_inferencer, refusal=(mmlit.utils.StoredConfigError, 'does not build a model from the config')),
    'torchscript-behind-a-second-central-directory': Attack(
        lambda t: _second_central_directory(t / 'a.pth', t / 'PWNED'),
        refusal=(pickle.UnpicklingError, 'TorchScript archive')),
    'sparse-index-out-of-range': Attack(
        lambda t: (torch.save({'state_dict': {'w': _SparseOutOfRange()}}, t / 'a.pth'), t / 'a.pth')[1],
        load=_load_and_use,
        refusal=(pickle.UnpicklingError, 'of invalid data .size is inconsistent with indices')),
    'numpy-array-built-twice-under-a-tensor': Attack(
        lambda t: _array_built_twice(t / 'a.pth'), load=_load_and_use,
        refusal=(pickle.UnpicklingError, 'twice|the global torch._utils._rebuild_device_tensor_from_numpy')),
    'numpy-array-built-twice': Attack(
        lambda t: _array_built_twice(t / 'a.pth', under_a_tensor=False), load=_load_and_use,
        refusal=(pickle.UnpicklingError, 'twice')),
    # plain data, but building it runs constructors with the checkpoint's arguments: registry names imported
    # as dotted paths, mmdet's CameraMotionCompensation eval()s its warp_mode
    'inferencer-type-is-a-dotted-path': Attack(
        lambda t: _inferencer_checkpoint(t / 'a.pth', f"model = dict(type='os.system', command='touch {t}/PWNED')"),
        load=_det_inferencer, refusal=(mmlit.utils.StoredConfigError, 'does not build a model from the config')),
    'inferencer-constructor-evaluates-a-string': Attack(
        lambda t: _inferencer_checkpoint(t / 'a.pth', (
            "model = dict(type='StrongSORT', cmc=dict(type='CameraMotionCompensation', "
            f"warp_mode=\"__import__('os').system('touch {t}/PWNED') or 0\"))")),
        load=_det_inferencer, refusal=(mmlit.utils.StoredConfigError, 'does not build a model from the config')),
    'sparse-indices-fixed-after-validation': Attack(
        lambda t: _sparse_laundered(t / 'a.pth'), load=_load_and_use,
        refusal=(pickle.UnpicklingError, 'of invalid data|SETITEMS? on Tensor')),
    'setitem-into-a-tensor': Attack(
        lambda t: (torch.save({'state_dict': {'w': _SetitemIntoTensor()}}, t / 'a.pth'), t / 'a.pth')[1],
        refusal=(pickle.UnpicklingError, 'SETITEMS? on Tensor')),
    'resume-optimizer-state-of-another-shape': Attack(
        lambda t: _hostile_optimizer_state(t), load=_resume,
        refusal=(mmlit.utils.CheckpointError, 'holds exp_avg of shape .1,. for a parameter of shape .1, 4.')),
    'pavi-plain-torch-load': Attack(
        lambda t: t / 'a.pth', load=lambda p: CheckpointLoader.load_checkpoint('pavi://' + str(p)),
        refusal=(mmlit.utils.CheckpointError, 'does not load pavi://')),
}


@pytest.mark.parametrize('name', list(ATTACKS))
def test_attack(name, tmp_path):
    attack = ATTACKS[name]
    path = attack.build(tmp_path)
    result = None
    if attack.refusal is None:
        result = attack.load(path)
    else:
        error, message = attack.refusal
        with pytest.raises(error, match=message):
            attack.load(path)
    attack.harmless(tmp_path, result)


# ------------------------------------------------------------------------------------ the rows are real
def test_the_payloads_run_without_mmlit(tmp_path):
    """What the rows are refused for happens where they are not: the TorchScript archive writes its file
    under torch.jit.load, the numpy pickle builds an object array over raw bytes, the BUILD sets the
    function's defaults, the stored config runs when MMEngine executes it."""
    archive = _torchscript_archive(tmp_path / 'a.pt', tmp_path / 'PWNED')
    torch.jit.load(str(archive))
    assert (tmp_path / 'PWNED').read_bytes() == b'A' * 8
    (tmp_path / 'PWNED').unlink()

    array = pickle.loads(pickle.dumps(_ObjectArrayOverBytes(_ObjectDtypeWithoutFlags()), 2))
    assert array.dtype == object and array.shape == (1, )  # not touched: its element is a wild pointer

    class Target:
        pass

    data = _build_on_global(__name__, 'Target', 'marker', b'K\x01')
    globals()['Target'] = Target
    try:
        pickle.loads(data)
        assert Target.marker == 1
    finally:
        del globals()['Target']

    from mmengine.config import Config
    Config.fromstring('a = 1' + _payload(tmp_path / 'PWNED'), file_format='.py')
    assert (tmp_path / 'PWNED').exists()


def test_resume_still_checks_the_stored_gpu_ids(tmp_path):
    """The stored config is read as data, not ignored: a run on 1 process resuming a 2-GPU checkpoint is
    told so, as MMEngine tells it."""
    path = _trained_checkpoint(tmp_path, 'gpu_ids = [0, 1]')
    with pytest.raises(RuntimeError, match='Number of GPUs used for current experiment is not consistent'):
        _resume(path)


def test_inferencer_builds_from_a_stored_config_the_user_trusts(tmp_path):
    """The refusal of model=None names the way for a trusted checkpoint, and that way works."""
    from mmdet.apis import DetInferencer
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    path = _inferencer_checkpoint(tmp_path / 'plain.pth', Config.fromfile(str(TOY_RETINANET)).pretty_text)
    cfg = mmlit.utils.stored_config_of(safe_load(path), str(path))
    inferencer = DetInferencer(model=cfg, weights=str(path), device='cpu', show_progress=False)
    assert type(inferencer.model).__name__ == 'RetinaNet'
    assert type(inferencer.model.backbone).__name__ == 'LIT'


def test_mmlit_does_not_widen_torchs_weights_only_allow_list(tmp_path):
    """``import mmlit`` leaves every other ``torch.load(weights_only=True)`` of the process as strict as
    torch made it: MMEngine's message hub (HistoryBuffer, numpy) is still refused there."""
    path = _plain_mmengine(tmp_path / 'hub.pth', '')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    if hasattr(torch.serialization, 'get_safe_globals'):
        assert HistoryBuffer not in torch.serialization.get_safe_globals()
    assert _load(path)['message_hub']['log_scalars']['train/loss'].mean() == 3.0  # mmlit's loads read it


@pytest.mark.parametrize('dtype', ['f8', '>f4', 'i8', 'u1', '?', 'c16'])
def test_plain_numpy_values_load(dtype, tmp_path):
    """Numeric arrays and scalars load as numpy's own unpickler restores them."""
    value = np.arange(6).reshape(2, 3).astype(dtype)
    saved = {'array': value, 'scalar': value.flat[1], 'empty': value[:0], 'fortran': np.asfortranarray(value)}
    torch.save(saved, tmp_path / 'n.pth')
    loaded = safe_load(tmp_path / 'n.pth')
    expected = pickle.loads(pickle.dumps(saved, 2))
    for key in saved:
        assert type(loaded[key]) is type(expected[key]) and loaded[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(loaded[key], expected[key])
    assert loaded['fortran'].flags.f_contiguous
    # the BUILD of a dtype changed a fresh copy, not numpy's shared instances
    assert np.dtype('f4').byteorder == '=' and np.dtype('f8').byteorder == '='
