"""A float32 training step gives the float64 gradients, for every arch, and the eval paths run.

This guards against silent numerical breakage on one torch release: on torch 2.1 a float32 LIT-S step
once gave gradients of 1e32 where float64 gave 1e2 (see mmlit.utils.compat and the README's supported
versions). Both precisions start from the same weights and input.
"""
import copy

import pytest
import torch

from mmlit.models import LIT
from mmlit.models.backbones import resolve_arch
from mmlit.models.fast_path import set_fast_path

ARCHS = ['ti', 's', 'm', 'b', 'litv2-s', 'litv2-b']


def _randomised(arch: str) -> LIT:
    """LIT (LITv2) with non-trivial DTM offsets and relative position tables, no stochastic depth."""
    torch.manual_seed(0)
    cls, name = resolve_arch(arch)
    model = cls(arch=name, drop_path_rate=0.)
    model.init_weights()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'conv_offset' in name:
                p.normal_(0, 0.05)
            elif 'relative_position_bias_table' in name:
                p.normal_(0, 1.)
    return model.train()


def _grads(model: LIT, x: torch.Tensor) -> dict:
    model.zero_grad()
    outs = model(x)
    # every output and every position counts, with different weights
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in outs)
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize('arch', ARCHS)
def test_float32_training_gradients_equal_float64(arch):
    model32 = _randomised(arch)
    model64 = copy.deepcopy(model32).double()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 96)
    g32, g64 = _grads(model32, x), _grads(model64, x.double())
    assert g32.keys() == g64.keys() == {n for n, p in model32.named_parameters() if p.requires_grad}
    # float32 rounding over a few dozen layers stays far below 1e-3 of a tensor's largest gradient entry;
    # the floor covers gradients that are zero in exact arithmetic (a conv bias before a BatchNorm)
    floor = 1e-5 * max(g.abs().max().item() for g in g64.values())
    worst = []
    for name, ref in g64.items():
        err = (g32[name].double() - ref).abs().max().item()
        scale = ref.abs().max().item()
        if not err <= 1e-3 * scale + floor:
            worst.append((name, err, scale))
    assert not worst, f'float32 gradients differ from float64 (name, max error, max |grad|): {worst[:5]}'


@pytest.mark.parametrize('arch', ARCHS)
def test_eval_forward_every_arch(arch):
    """Eval mode without gradients (cached embeddings and tables, the chunked MLP: 2 x 56 x 40 stage-1
    tokens exceed its chunk) gives what the plain formulas (every fast path swapped out) give."""
    model = _randomised(arch).eval()
    x = torch.randn(2, 3, 224, 160)
    with torch.no_grad():
        outs = model(x)
        again = model(x)  # from the caches
    with torch.no_grad():
        plain = set_fast_path(copy.deepcopy(model), False)(x)  # the plain formulas
    assert [o.shape[1] for o in outs] == model.embed_dims
    for a, b, c in zip(outs, again, plain):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        # float32 rounding: the fast path sums in another order (oneDNN's GEMMs on the CPU, SDPA); it is
        # as far from float64 as the plain path is (a few 1e-6 of the largest output). The tanh GELU in
        # place of the exact one would differ by 1e-3 of it
        torch.testing.assert_close(a, c, rtol=0, atol=2e-5 * c.abs().max().item())
