import os
import os.path as osp
import sys

import pytest
import torch

# Deterministic, quiet and within two cores.
torch.set_num_threads(min(2, os.cpu_count() or 1))
os.environ.setdefault('OMP_NUM_THREADS', '2')

# shared test helpers (toy_runs) import by name
sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), 'helpers'))


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A working directory whose data/toy_shapes is generated once for all tests of a module."""
    return tmp_path_factory.mktemp('toy_workspace')
