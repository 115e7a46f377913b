"""What mmlit's tools do before building a runner, and how they stop on a bad checkpoint."""
import functools
import os
import os.path as osp
import sys
from typing import Callable, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.dist import init_dist, is_distributed

from mmlit.utils.safe_checkpoint import CheckpointError, check_checkpoint

TOY_CONFIG = 'configs/toy/mask_rcnn_lit_ti_fpn_toy_shapes.py'


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Load a config with command-line overrides; the work dir defaults to ``work_dirs/<config name>``."""
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def setup_env(cfg: Config) -> None:
    """Let distributed runs work on machines without CUDA: CPU processes talking over gloo.

    With a launcher and no CUDA device, the process group is started here with the gloo backend
    (MMEngine's own ``init_dist``, minus its ``torch.cuda.set_device``), and the model is wrapped in DDP
    without device ids, as DDP wants for CPU modules. With CUDA nothing changes.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    if not is_distributed():
        set_device = torch.cuda.set_device
        torch.cuda.set_device = lambda device: None  # no CUDA device to pick
        try:
            init_dist(launcher, **dist_cfg)
        finally:
            torch.cuda.set_device = set_device


def _dataset_paths(dataset: dict):
    """(data_root, annotation file) pairs of a dataset config, looking inside dataset wrappers; none for
    ``mmlit.ToyShapes`` datasets, which generate their data when it is missing."""
    if dataset.get('type') in ('mmlit.ToyShapes', 'ToyShapes'):
        return
    if 'dataset' in dataset:
        yield from _dataset_paths(dataset['dataset'])
        return
    for inner in dataset.get('datasets', []):
        yield from _dataset_paths(inner)
    if 'datasets' in dataset:
        return
    root = dataset.get('data_root', '') or ''
    ann = dataset.get('ann_file', '') or ''
    yield root, (osp.join(root, ann) if ann and not osp.isabs(ann) else ann)


def check_datasets(cfg: Config, config_path: str, loaders: Sequence[str]) -> None:
    """Stop with a clear message when a config's data is not on disk."""
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for root, ann in _dataset_paths(cfg[loader]['dataset']):
            missing = [p for p in (root, ann) if p and not osp.exists(p)]
            if missing:
                raise SystemExit(
                    f'{config_path}: the {loader} data is not there: {missing[0]} does not exist.\n'
                    f'Put the dataset there (the layout of the upstream mmdet/mmseg/mmpretrain docs, e.g. '
                    f'COCO 2017 under data/coco/ with annotations/ and train2017/ val2017/), or point the '
                    f'config at it with --cfg-options {loader}.dataset.data_root=/path/to/data/.\n'
                    f'To see mmlit train without any download, run the embedded toy dataset instead:\n'
                    f'    python tools/train.py {TOY_CONFIG}')


def run_tool(main: Callable) -> Callable:
    """Decorate a tool's ``main`` so that a bad checkpoint stops it with one line on stderr (exit code 1):
    the file, what is wrong and what to do (:class:`~mmlit.utils.CheckpointError`). ``MMLIT_DEBUG=1``
    shows the traceback instead."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except CheckpointError as err:
            if os.environ.get('MMLIT_DEBUG', '') not in ('', '0'):
                raise
            sys.exit(f'error: {err} (MMLIT_DEBUG=1 shows the traceback)')

    return wrapper


def check_checkpoints(*filenames: Optional[str]) -> list:
    """:func:`~mmlit.utils.safe_checkpoint.check_checkpoint` for each of ``filenames`` that is given,
    before a runner is built (and prints its config); what it returned for each (None where not given)."""
    return [check_checkpoint(filename) if filename else None for filename in filenames]


def check_model_fits(model, checkpoint, filename: str) -> None:
    """Raise :class:`~mmlit.utils.CheckpointError` before testing when fewer than half of ``model``'s
    tensors are in ``checkpoint`` (loaded from ``filename``; None: not checked) with their shape (MMEngine
    would only warn, and evaluate a model that is mostly random), naming the arch of LIT its backbone
    looks like."""
    if checkpoint is None:
        return
    from mmlit.models.utils import check_fits
    state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
    state_dict = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()
                  if isinstance(v, torch.Tensor)}
    model = getattr(model, 'module', model)
    check_fits(model.state_dict(), state_dict, filename, f'the {type(model).__name__} of the config',
               backbone_prefix='backbone.')
