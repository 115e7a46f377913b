"""A hook that reseeds Python, NumPy and torch from (seed, iteration), for reproducible resumed runs."""
import random

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmlit.registry import HOOKS


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Reseed the random generators from (seed, iteration) so a resumed run repeats the original.

    MMEngine seeds Python, NumPy and torch once, at start-up. A run resumed at iteration k therefore draws
    different data augmentations and dropout masks from iteration k on than the run it continues. This
    hook reseeds all three generators with ``seed + k`` before iteration k's batch is loaded (after every
    iteration and at the start of every epoch), so an interrupted and resumed run ends with exactly the
    weights of an uninterrupted one. Data loaded in worker processes (``num_workers > 0``) is seeded by the
    dataloader itself, per worker, as MMEngine does.

    Args:
        seed (int, optional): Base seed; defaults to the runner's ``randomness.seed``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed=None):
        self.seed = seed

    def _reseed(self, runner, iteration: int) -> None:
        """Seed Python's ``random``, NumPy and torch with ``(base + iteration) % 2**31``.

        ``base`` is ``seed``, else the runner's seed (0 if it has none), plus the rank when the
        runner's ``randomness`` config sets ``diff_rank_seed``.
        """
        base = self.seed if self.seed is not None else (runner.seed or 0)
        if runner._randomness_cfg.get('diff_rank_seed', False):
            base += get_rank()
        seed = (base + iteration) % (2**31)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def before_train_epoch(self, runner) -> None:
        """Reseed before the epoch's first batch is loaded, from the iteration it starts at."""
        self._reseed(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        """Reseed before the next batch is loaded.

        MMEngine advances ``runner.iter`` only after this hook, so the next iteration is ``runner.iter + 1``.
        An iteration-based loop calls ``before_train_epoch`` only once, when it starts (or resumes), so
        this is the seed every later batch is drawn with.
        """
        self._reseed(runner, runner.iter + 1)
