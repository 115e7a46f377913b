"""The versions of the stack mmlit runs on, and a check that they work together.

    python -m mmlit.utils.collect_env     # prints the versions; exits 1 naming what cannot work together

``tools/install.sh`` ends with it, so an install that leaves, say, a torch built against numpy 1 beside
numpy 2 fails instead of reporting success.
"""
import importlib
import sys
from typing import Dict

PACKAGES = ('numpy', 'torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain', 'mmlit')


def collect_env() -> Dict[str, str]:
    """Python and the version of each package of the stack ('missing' when it cannot be imported)."""
    env = {'python': sys.version.split()[0]}
    for name in PACKAGES:
        try:
            env[name] = importlib.import_module(name).__version__
        except Exception as err:  # noqa: BLE001  (an import can fail in many ways: ABI, numpy, ...)
            env[name] = f'missing ({type(err).__name__}: {err})'
    return env


def check_stack() -> None:
    """Raise ``RuntimeError`` naming the problem and the fix when the stack cannot work together."""
    import numpy as np
    import torch
    try:
        # torch built against numpy 1 (torch < 2.3) cannot use numpy 2: "Numpy is not available"
        ok = torch.from_numpy(np.arange(3.)).add(1).numpy().tolist() == [1., 2., 3.]
    except Exception as err:  # noqa: BLE001
        ok, detail = False, f'{type(err).__name__}: {err}'
    else:
        detail = 'wrong values'
    if not ok:
        raise RuntimeError(f'torch {torch.__version__} cannot use numpy {np.__version__} ({detail}): torch < 2.3 '
                           'needs numpy < 2, e.g. pip install "numpy<2" (tools/install.sh pins it)')
    missing = {k: v for k, v in collect_env().items() if v.startswith('missing')}
    if missing:
        raise RuntimeError('cannot import ' + '; '.join(f'{k}: {v}' for k, v in missing.items()) +
                           ': run bash tools/install.sh')
    import mmcv.ops  # noqa: F401  (fails with an ABI error when mmcv was built for another torch)


def main() -> int:
    """Print the stack's versions and :func:`check_stack` it.

    Returns:
        int: The exit status: 0 when the stack works together, 1 (the problem printed to stderr) when not.
    """
    env = collect_env()
    print(', '.join(f'{k} {v}' for k, v in env.items()))
    try:
        check_stack()
    except Exception as err:  # noqa: BLE001
        print(f'FAILED: {err}', file=sys.stderr)
        return 1
    print('ok: the stack works together')
    return 0


if __name__ == '__main__':
    sys.exit(main())
