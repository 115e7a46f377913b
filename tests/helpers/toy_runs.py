"""Running mmlit's tools end to end on the embedded toy data, for the tests (imported as ``toy_runs``)."""
import os
import os.path as osp
import subprocess

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
TOY = osp.join(ROOT, 'configs', 'toy')
DEMO_IMAGE = osp.join(ROOT, 'demo', 'demo.png')

# --cfg-options that make a toy epoch short: 8 training and 4 test images
EPOCH_SHORT = ['train_dataloader.dataset.indices=8', 'val_dataloader.dataset.indices=4',
               'test_dataloader.dataset.indices=4', 'train_cfg.val_interval=1']


def run(args, cwd, env=None, timeout=600) -> str:
    """Run a tool in ``cwd`` with mmlit and tests/helpers importable; fail the test with its output."""
    python_path = os.pathsep.join([ROOT, osp.join(ROOT, 'tests', 'helpers'), os.environ.get('PYTHONPATH', '')])
    full_env = dict(os.environ, PYTHONPATH=python_path, OMP_NUM_THREADS='1')
    full_env.update(env or {})
    result = subprocess.run(args, cwd=str(cwd), env=full_env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f'{args} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}'
    return result.stdout + result.stderr
