"""``mmlit.ToyShapes``: any dataset config over the toy data, which is generated when it is missing.

Toy configs wrap their mmdet, mmseg or mmpretrain dataset in it, so they run the same through mmlit's
``tools/train.py``, the upstream packages' own ``tools/train.py`` / ``tools/test.py``, or ``mim train``,
on a machine where the data does not exist yet::

    train_dataloader = dict(dataset=dict(
        type='mmlit.ToyShapes', root='data/toy_shapes',
        dataset=dict(type='CocoDataset', data_root='data/toy_shapes/', ...)))
"""
from mmengine.dist import barrier, get_rank

from mmlit.registry import DATASETS

from .toy_shapes import ensure_toy_shapes


@DATASETS.register_module(name='ToyShapes')
def build_toy_shapes_dataset(dataset: dict,
                             root: str = 'data/toy_shapes',
                             num_train: int = 96,
                             num_val: int = 24,
                             img_size: int = 128,
                             seed: int = 0,
                             **dataset_options):
    """Generate the toy data under ``root`` unless the same is there already, then build ``dataset``.

    In a distributed run rank 0 generates it while the other processes wait.

    Args:
        dataset (dict): The dataset config (``CocoDataset``, ``BaseSegDataset``, ``CustomDataset``, ...),
            built from the registry of the runner's scope.
        root (str): Where the toy data lives. Defaults to ``'data/toy_shapes'``.
        num_train, num_val, img_size, seed (int): What to generate (see
            :func:`~mmlit.datasets.generate_toy_shapes`).
        **dataset_options: Settings of the inner dataset given on the wrapper, as
            ``--cfg-options train_dataloader.dataset.indices=8`` does; they override ``dataset``'s.

    Returns:
        The dataset built from ``dataset`` (not a wrapper: the runner, samplers and evaluators see the
        upstream dataset itself).
    """
    if get_rank() == 0:  # one process writes; the others wait for it
        ensure_toy_shapes(root, num_train=num_train, num_val=num_val, img_size=img_size, seed=seed)
    barrier()
    return DATASETS.build({**dataset, **dataset_options})
