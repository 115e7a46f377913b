"""Checkpoint loading never runs code, on every supported torch: MMEngine checkpoints save, resume and
load through mmlit's loaders; arbitrary objects are refused (torch < 2.6 included, whose plain
``torch.load`` would run them)."""
import functools
import http.server
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import zipfile

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import CheckpointLoader, load_checkpoint
from mmengine.runner import checkpoint as mmengine_checkpoint
from payloads import RunsCode as _RunsCode  # tests/helpers
from toy_runner import runner as _runner  # tests/helpers

import mmlit  # noqa: F401  (registers the safe loaders)
from mmlit.utils import history_buffer_method, safe_load


def _pickled(path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(next(n for n in archive.namelist() if n.endswith('data.pkl')))


def test_runner_checkpoint_saves_and_resumes(tmp_path):
    runner = _runner(tmp_path, max_iters=4)
    runner.train()
    ckpt = tmp_path / 'iter_4.pth'
    assert ckpt.exists()
    # no general callable in what mmlit-era mmengine writes
    assert b'getattr' not in _pickled(ckpt)
    # what mmengine's loaders (now mmlit's) do
    loaded = CheckpointLoader.load_checkpoint(str(ckpt), map_location='cpu')
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)

    resumed = _runner(tmp_path, max_iters=6, resume=True)
    resumed.train()
    assert resumed.iter == 6
    assert (tmp_path / 'iter_6.pth').exists()
    # the resumed run restored the iteration, the scheduler and the optimizer state
    state = safe_load(tmp_path / 'iter_6.pth', map_location='cpu')
    assert state['meta']['iter'] == 6
    assert state['optimizer']['state'][0]['step'] == 6


def test_checkpoint_written_before_mmlit_loads(tmp_path):
    """A message hub saved by plain mmengine (no mmlit imported) pickles getattr(HistoryBuffer, 'min')."""
    path = tmp_path / 'plain_mmengine.pth'
    code = textwrap.dedent(f"""
        import sys, torch
        from mmengine.logging import MessageHub
        hub = MessageHub.get_instance('plain')
        hub.update_scalar('train/loss', 3.0)
        torch.save(dict(meta=dict(message_hub=hub.state_dict()), state_dict={{}}), {str(path)!r})
        assert 'mmlit' not in sys.modules
    """)
    subprocess.run([sys.executable, '-c', code], check=True)
    assert b'getattr' in _pickled(path)
    loaded = CheckpointLoader.load_checkpoint(str(path))['meta']['message_hub']['log_scalars']['train/loss']
    assert isinstance(loaded, HistoryBuffer)
    assert loaded.mean() == 3.0 and loaded.statistics('max') == 3.0


def test_new_checkpoints_hold_no_getattr(tmp_path):
    hub = MessageHub.get_instance('test_new_checkpoints_hold_no_getattr')
    hub.update_scalar('loss', 1.0)
    torch.save(hub.state_dict(), tmp_path / 'hub.pth')
    assert b'getattr' not in _pickled(tmp_path / 'hub.pth')
    assert safe_load(tmp_path / 'hub.pth')['log_scalars']['loss'].mean() == 1.0


class _GetattrAbuse:

    def __reduce__(self):
        return (getattr, (torch.Tensor, 'add_'))


@functools.lru_cache(maxsize=None)
def _http_root(directory: str) -> str:
    """A loopback HTTP server for ``directory`` (for the http(s) loader); lives as long as the tests."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f'http://127.0.0.1:{server.server_address[1]}'


def _load_by(how, path, monkeypatch):
    if how == 'safe_load':
        return safe_load(path)
    if how == 'CheckpointLoader':
        return CheckpointLoader.load_checkpoint(str(path))
    if how == 'load_checkpoint':
        return load_checkpoint(nn.Linear(1, 1), str(path))
    url = f'{_http_root(str(path.parent))}/{path.name}'
    monkeypatch.setenv('TORCH_HOME', str(path.parent / 'torch_home'))  # downloads go to $TORCH_HOME/hub
    if how == 'http':
        return CheckpointLoader.load_checkpoint(url)
    # the model-zoo schemes resolve a name, then call mmengine's module-level http or local loader
    if how == 'torchvision':
        monkeypatch.setattr(mmengine_checkpoint, 'get_torchvision_models', lambda: {'zoo_model': url})
        return CheckpointLoader.load_checkpoint('torchvision://zoo_model')
    if how == 'openmmlab':  # a name that maps to a file under the mmengine home (here: an absolute path)
        monkeypatch.setattr(mmengine_checkpoint, 'get_external_models', lambda: {'zoo_model': str(path)})
        return CheckpointLoader.load_checkpoint('open-mmlab://zoo_model')
    raise ValueError(how)


@pytest.mark.parametrize('how', ['safe_load', 'CheckpointLoader', 'load_checkpoint', 'http', 'torchvision',
                                 'openmmlab'])
@pytest.mark.parametrize('payload', ['code', 'getattr'])
def test_arbitrary_objects_are_refused(payload, how, tmp_path, monkeypatch):
    marker = tmp_path / 'code_ran'
    obj, needle = (_RunsCode(marker), 'system') if payload == 'code' else (_GetattrAbuse(), 'getattr')
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'weight': torch.ones(1, 1)}, 'meta': obj}, path)
    with pytest.raises(pickle.UnpicklingError) as err:
        _load_by(how, path, monkeypatch)
    assert needle in str(err.value)
    assert not marker.exists(), 'loading the checkpoint ran its code'


@pytest.mark.parametrize('how', ['CheckpointLoader', 'http', 'torchvision', 'openmmlab'])
def test_plain_checkpoints_load_through_every_loader(how, tmp_path, monkeypatch):
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': nn.Linear(2, 3).state_dict(), 'meta': {'epoch': 3, 'classes': ('a', 'b')}},
               path)
    loaded = _load_by(how, path, monkeypatch)
    assert loaded['meta'] == {'epoch': 3, 'classes': ('a', 'b')}
    assert loaded['state_dict']['weight'].shape == (3, 2)


def test_restricted_getattr():
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for owner, name in [(HistoryBuffer, '__init__'), (HistoryBuffer, 'update'), (os, 'system')]:
        with pytest.raises(pickle.UnpicklingError, match='Refusing getattr'):
            history_buffer_method(owner, name)
