"""MMEngine checkpoints under torch >= 2.6 weights-only loading: save, resume, refuse code."""
import io
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmlit  # noqa: F401  (registers the safe globals)
from mmlit.utils import history_buffer_method


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out.squeeze(-1) - labels)**2).mean())
        return out


class ToyDataset(torch.utils.data.Dataset):
    metainfo = dict(classes=('a', 'b'))

    def __len__(self):
        return 16

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(4, generator=g), labels=torch.tensor(float(i % 3)))


def _runner(work_dir, max_iters, resume=False):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler', shuffle=True),
                              batch_size=4, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='MultiStepLR', milestones=[3], by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0, deterministic=True),
        resume=resume,
        experiment_name=f'safe_ckpt_{max_iters}_{resume}')


@pytest.mark.skipif(not hasattr(torch.serialization, 'add_safe_globals'), reason='torch < 2.4')
def test_runner_checkpoint_saves_and_resumes(tmp_path):
    runner = _runner(tmp_path, max_iters=4)
    runner.train()
    ckpt = tmp_path / 'iter_4.pth'
    assert ckpt.exists()
    with open(ckpt, 'rb') as f:
        # no general callable in what mmlit-era mmengine writes
        assert 'builtins.getattr' not in torch.serialization.get_unsafe_globals_in_checkpoint(f)
    # the plain weights-only load that mmengine does
    loaded = torch.load(ckpt, map_location='cpu')
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)

    resumed = _runner(tmp_path, max_iters=6, resume=True)
    resumed.train()
    assert resumed.iter == 6
    assert (tmp_path / 'iter_6.pth').exists()
    # the resumed run restored the iteration, the scheduler and the optimizer state
    state = torch.load(tmp_path / 'iter_6.pth', map_location='cpu')
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
    with zipfile.ZipFile(path) as archive:
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith('data.pkl')))
    assert b'getattr' in pickled
    loaded = torch.load(path)['meta']['message_hub']['log_scalars']['train/loss']
    assert isinstance(loaded, HistoryBuffer)
    assert loaded.mean() == 3.0 and loaded.statistics('max') == 3.0


def test_new_checkpoints_hold_no_getattr():
    hub = MessageHub.get_instance('test_new_checkpoints_hold_no_getattr')
    hub.update_scalar('loss', 1.0)
    f = io.BytesIO()
    torch.save(hub.state_dict(), f)
    f.seek(0)
    assert 'builtins.getattr' not in torch.serialization.get_unsafe_globals_in_checkpoint(f)


class _RunsCode:

    def __reduce__(self):
        return (os.system, ('echo this must never run',))


class _GetattrAbuse:

    def __reduce__(self):
        return (getattr, (torch.Tensor, 'add_'))


@pytest.mark.parametrize('payload,needle', [(_RunsCode(), 'system'), (_GetattrAbuse(), 'getattr')])
def test_arbitrary_objects_are_still_refused(payload, needle):
    f = io.BytesIO()
    torch.save({'state_dict': {}, 'meta': payload}, f)
    f.seek(0)
    with pytest.raises(pickle.UnpicklingError) as err:
        torch.load(f)
    assert needle in str(err.value)


def test_restricted_getattr():
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for owner, name in [(HistoryBuffer, '__init__'), (HistoryBuffer, 'update'), (os, 'system')]:
        with pytest.raises(pickle.UnpicklingError, match='Refusing getattr'):
            history_buffer_method(owner, name)
