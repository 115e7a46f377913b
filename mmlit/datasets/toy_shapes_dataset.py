"""``mmlit.ToyShapes``: an upstream dataset over the toy data, which is generated when it is missing.

Toy configs use it in place of their mmdet, mmseg or mmpretrain dataset type, naming that type in
``dataset_type``; every other key is the upstream dataset's own. So they run the same through mmlit's
``tools/train.py``, the upstream packages' own ``tools/train.py`` / ``tools/test.py``, ``mim train`` or the
upstream inferencers (which read ``test_dataloader.dataset.pipeline``), on a machine where the data does not
exist yet::

    train_dataloader = dict(dataset=dict(
        type='mmlit.ToyShapes', dataset_type='CocoDataset', data_root='data/toy_shapes/',
        ann_file='annotations/instances_train.json', ...))
"""
from typing import Optional

from mmengine.dist import barrier, get_rank

from mmlit.registry import DATASETS

from .toy_shapes import ensure_toy_shapes


@DATASETS.register_module(name='ToyShapes')
def build_toy_shapes_dataset(dataset_type: str,
                             root: Optional[str] = None,
                             num_train: int = 96,
                             num_val: int = 24,
                             img_size: int = 128,
                             seed: int = 0,
                             **dataset):
    """Generate the toy data under ``root`` unless the same is there already, then build the dataset.

    In a distributed run rank 0 generates it while the other processes wait.

    Args:
        dataset_type (str): The upstream dataset (``CocoDataset``, ``BaseSegDataset``, ``CustomDataset``,
            ...), built from the registry of the runner's scope.
        root (str, optional): Where the toy data lives. Defaults to the dataset's ``data_root``.
        num_train, num_val, img_size, seed (int): What to generate (see
            :func:`~mmlit.datasets.generate_toy_shapes`).
        **dataset: The upstream dataset's arguments (``data_root``, ``ann_file``, ``pipeline``, ...).

    Returns:
        The upstream dataset itself (not a wrapper: the runner, samplers and evaluators see it as it is).
    """
    root = root or dataset.get('data_root')
    if not root:
        raise ValueError("mmlit.ToyShapes needs the toy data's directory: give root= or data_root=")
    if get_rank() == 0:  # one process writes; the others wait for it
        ensure_toy_shapes(root, num_train=num_train, num_val=num_val, img_size=img_size, seed=seed)
    barrier()
    return DATASETS.build(dict(type=dataset_type, **dataset))
