"""The install script's final check: it passes on a working stack and names torch/numpy clashes."""
import subprocess
import sys

import pytest
import torch

from mmlit.utils.collect_env import check_stack, collect_env


def test_a_working_stack_passes():
    env = collect_env()
    assert env['torch'] == torch.__version__ and not env['mmlit'].startswith('missing')
    check_stack()
    result = subprocess.run([sys.executable, '-m', 'mmlit.utils.collect_env'], capture_output=True, text=True)
    assert result.returncode == 0 and 'ok: the stack works together' in result.stdout, result.stderr


def test_torch_that_cannot_use_numpy_fails_with_the_fix(monkeypatch):
    """What torch 2.1 does beside numpy 2 ("Failed to initialize NumPy: _ARRAY_API not found")."""

    def from_numpy(array):
        raise RuntimeError('Numpy is not available')

    monkeypatch.setattr(torch, 'from_numpy', from_numpy)
    with pytest.raises(RuntimeError, match=r'cannot use numpy .*Numpy is not available.*numpy < 2'):
        check_stack()


def test_a_missing_package_is_named(monkeypatch):
    import importlib
    real = importlib.import_module
    monkeypatch.setattr(importlib, 'import_module',
                        lambda name: (_ for _ in ()).throw(ImportError('gone')) if name == 'mmdet' else real(name))
    with pytest.raises(RuntimeError, match=r'cannot import mmdet: missing \(ImportError: gone\)'):
        check_stack()
