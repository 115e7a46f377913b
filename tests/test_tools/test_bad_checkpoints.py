"""Bad checkpoint files through the tools: one line on stderr that names the file, what is wrong and what to
do, exit code 1 and no traceback (``MMLIT_DEBUG=1`` shows it), before a runner prints its config."""
import os
import os.path as osp
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch

import mmlit  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TEST = osp.join(ROOT, 'tools', 'test.py')
TRAIN = osp.join(ROOT, 'tools', 'train.py')
CONVERT = osp.join(ROOT, 'tools', 'model_converters', 'lit2mmlit.py')
DEMO = osp.join(ROOT, 'demo', 'image_demo.py')
TOY_TI = osp.join(ROOT, 'configs', 'toy', 'mask_rcnn_lit_ti_fpn_toy_shapes.py')
TOY_S = osp.join(ROOT, 'configs', 'toy', 'mask_rcnn_lit_s_fpn_toy_shapes.py')

pytestmark = pytest.mark.slow


class _ObjectArrayOverBytes:
    """A numpy object array over raw bytes, its dtype's flags cleared (touching it would segfault)."""

    def __reduce__(self):
        from numpy._core import multiarray
        dtype = type('D', (), {'__reduce__': lambda self: (np.dtype, ('O', False, True),
                                                           (3, '|', None, None, None, -1, -1, 0))})()
        return (multiarray._reconstruct, (np.ndarray, (0, ), b'b'), (1, (1, ), dtype, False, b'A' * 8))


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """name -> (checkpoint argument, what the one line must say)."""
    root = tmp_path_factory.mktemp('bad_files')
    good = root / 'good.pth'
    torch.save({'state_dict': {'backbone.patch_embed.projection.weight': torch.zeros(64, 3, 4, 4)}, 'meta': {}},
               good)
    data = good.read_bytes()
    (root / 'truncated.pth').write_bytes(data[:len(data) // 2])
    (root / 'random.pth').write_bytes(np.random.default_rng(0).bytes(4096).replace(b'PK', b'pk'))
    (root / 'empty.pth').write_bytes(b'')
    torch.save({'meta': _ObjectArrayOverBytes()}, root / 'numpy_object.pth')
    return {
        'truncated': (str(root / 'truncated.pth'), 'is truncated or corrupt'),
        'random': (str(root / 'random.pth'), 'is truncated or corrupt'),
        'empty': (str(root / 'empty.pth'), 'is empty (0 bytes)'),
        'missing': (str(root / 'missing.pth'), 'no such file'),
        'zoo-name': ('open-mmlab://nonexistent', "'nonexistent' is not a model-zoo name"),
        'numpy-object': (str(root / 'numpy_object.pth'), "numpy dtype dtype('O')"),
    }


def _run(args, cwd):
    env = dict(os.environ, MMLIT_DEBUG='')
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _assert_one_line(result, checkpoint, says):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr[-3000:]
    assert lines and lines[-1].startswith('error: '), result.stderr[-3000:]
    assert checkpoint in lines[-1] and says in lines[-1], lines[-1]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]


def _in_process(script, args, monkeypatch, capfd):
    """Run a tool's ``__main__`` in this process (a subprocess per case would import mmdet each time):
    the message of the ``SystemExit`` it stops with, and what it printed."""
    monkeypatch.setattr(sys, 'argv', [script, *args])
    monkeypatch.delenv('MMLIT_DEBUG', raising=False)
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(script, run_name='__main__')
    out, err = capfd.readouterr()
    return str(stop.value.code), out + err


@pytest.mark.parametrize('case', ['truncated', 'random', 'empty', 'missing', 'zoo-name', 'numpy-object'])
def test_test_py(case, files, tmp_path, monkeypatch, capfd):
    checkpoint, says = files[case]
    message, printed = _in_process(TEST, [TOY_TI, checkpoint, '--work-dir', str(tmp_path)], monkeypatch, capfd)
    assert message.startswith('error: ') and '\n' not in message, message
    assert checkpoint in message and says in message, message
    assert 'Config:' not in printed  # stopped before the runner printed its config


@pytest.mark.parametrize('case', ['truncated', 'random', 'empty', 'missing', 'numpy-object'])
def test_converter(case, files, tmp_path, monkeypatch, capfd):
    checkpoint, says = files[case]
    message, _ = _in_process(CONVERT, [checkpoint, str(tmp_path / 'out.pth')], monkeypatch, capfd)
    assert message.startswith('error: ') and '\n' not in message and checkpoint in message and says in message
    assert not (tmp_path / 'out.pth').exists()


def test_train_py_resume_and_demo(files, tmp_path, monkeypatch, capfd):
    checkpoint, says = files['truncated']
    message, _ = _in_process(TRAIN, [TOY_TI, '--resume', checkpoint, '--work-dir', str(tmp_path)], monkeypatch, capfd)
    assert message.startswith('error: ') and checkpoint in message and says in message
    checkpoint, says = files['missing']
    message, _ = _in_process(DEMO, [osp.join(ROOT, 'demo', 'demo.png'), TOY_TI, checkpoint, '--out-dir', str(tmp_path)],
                             monkeypatch, capfd)
    assert message.startswith('error: ') and checkpoint in message and says in message


def test_as_a_command(files, tmp_path):
    """The real command lines: exit code 1, the one line last on stderr, no traceback; the numpy pickle that
    segfaulted the converter (rc 139) is one line too. ``MMLIT_DEBUG=1`` shows the traceback."""
    checkpoint, says = files['truncated']
    _assert_one_line(_run([TEST, TOY_TI, checkpoint, '--work-dir', str(tmp_path)], tmp_path), checkpoint, says)
    checkpoint, says = files['numpy-object']
    _assert_one_line(_run([CONVERT, checkpoint, str(tmp_path / 'out.pth')], tmp_path), checkpoint, says)
    checkpoint, _ = files['empty']
    env = dict(os.environ, MMLIT_DEBUG='1')
    result = subprocess.run([sys.executable, CONVERT, checkpoint, str(tmp_path / 'out.pth')], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and 'Traceback' in result.stderr and 'CheckpointError' in result.stderr


def test_test_py_with_the_checkpoint_of_another_arch(tmp_path, monkeypatch, capfd):
    """A LIT-S Mask R-CNN checkpoint given to the LIT-Ti config: MMEngine would warn and evaluate a model
    that is mostly random; the tool says which arch the checkpoint is of."""
    from mmlit_tools.analysis import build_target
    path = tmp_path / 'lit_s.pth'
    torch.save({'state_dict': build_target(TOY_S).state_dict(), 'meta': {}}, path)
    message, _ = _in_process(TEST, [TOY_TI, str(path), '--work-dir', str(tmp_path)], monkeypatch, capfd)
    assert message.startswith('error: ') and str(path) in message
    assert "its backbone looks like mmlit.LIT arch='s'" in message, message
