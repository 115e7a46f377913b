import os
import os.path as osp
import sys

import pytest
import torch

# Within two cores: run serially, a test takes both; under pytest-xdist (``-n 2``, as the README runs the
# suite) each worker takes its share, so the workers never oversubscribe the machine.
WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
THREADS = max(1, min(2, os.cpu_count() or 1) // WORKERS)
torch.set_num_threads(THREADS)
os.environ.setdefault('OMP_NUM_THREADS', str(THREADS))

# shared test helpers (toy_runs) import by name; the tools' helpers (mmlit_tools) live in tools/
sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), 'helpers'))
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A working directory whose data/toy_shapes is generated once for all tests of a module."""
    return tmp_path_factory.mktemp('toy_workspace')


def pytest_collection_modifyitems(config, items):
    """Run the slow (end-to-end) tests first: with ``-n 2`` the longest runs then start at once and the
    short unit tests fill the other worker, instead of one long run starting last. The sort is stable:
    each group keeps the collection order."""
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)
