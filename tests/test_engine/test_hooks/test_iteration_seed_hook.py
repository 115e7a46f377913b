"""IterationSeedHook: the batch of iteration k is drawn from the same random state however the run got there."""
from types import SimpleNamespace

import pytest
import torch

from mmlit.engine.hooks.iteration_seed_hook import IterationSeedHook


def _draws(start, stop, epoch_starts):
    """Run the hook's calls as MMEngine's loops make them from iteration ``start`` (a fresh or resumed
    run) to ``stop``; return, per iteration, the number its batch draws. ``epoch_starts``: the iterations
    at which a ``before_train_epoch`` comes (an iteration-based loop calls it once, when it starts)."""
    hook = IterationSeedHook()
    runner = SimpleNamespace(iter=start, seed=7, _randomness_cfg={})
    torch.manual_seed(12345)  # whatever MMEngine seeded at start-up: the hook must not depend on it
    draws = {}
    for it in range(start, stop):
        if it == start or it in epoch_starts:
            hook.before_train_epoch(runner)
        draws[it] = torch.rand(1).item()  # the batch of iteration `it` is loaded
        hook.after_train_iter(runner, batch_idx=it)
        runner.iter += 1  # MMEngine advances the counter after the hooks
    return draws


@pytest.mark.parametrize('loop', ['iteration', 'epoch'])
def test_a_resumed_run_draws_what_the_uninterrupted_run_drew(loop):
    epoch_starts = set() if loop == 'iteration' else {0, 4, 8}
    whole = _draws(0, 12, epoch_starts)
    for resume_at in (1, 4, 5, 8):
        if loop == 'epoch' and resume_at not in epoch_starts:
            continue  # epoch-based runs resume at epoch boundaries only
        resumed = _draws(resume_at, 12, {resume_at} | epoch_starts)
        assert resumed == {k: whole[k] for k in resumed}, f'{loop} loop resumed at {resume_at}'
    assert len(set(whole.values())) == len(whole), 'two iterations drew the same numbers'
