"""Every arch on CUDA under fp16 and bf16 autocast: forward and backward finite and close to fp32.

Skipped (with the reason) on machines without CUDA; CI has none, GPU checks run where one is lent.
"""
import copy

import pytest
import torch

from mmlit.models import LIT
from mmlit.models.fast_path import set_fast_path

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
@pytest.mark.parametrize('arch', ['ti', 's', 'm', 'b'])
def test_autocast_forward_backward_close_to_fp32(arch, dtype):
    torch.manual_seed(0)
    model = LIT(arch=arch, drop_path_rate=0.).cuda().train()
    model.init_weights()
    x = torch.randn(2, 3, 224, 192, device='cuda')

    def step(autocast: bool):
        model.zero_grad()
        with torch.autocast('cuda', dtype=dtype, enabled=autocast):
            outs = model(x)
        sum(o.float().square().mean() for o in outs).backward()
        return [o.detach().float() for o in outs], {n: p.grad.clone() for n, p in model.named_parameters()
                                                     if p.grad is not None}

    ref_outs, ref_grads = step(False)
    outs, grads = step(True)
    assert outs[-1].dtype == torch.float32
    tol = 0.02 if dtype == torch.float16 else 0.06  # bf16 keeps 8 bits of mantissa, fp16 11
    for i, (a, b) in enumerate(zip(outs, ref_outs)):
        assert torch.isfinite(a).all(), f'stage {i} output not finite'
        assert _relative_error(a, b) < tol, (i, _relative_error(a, b))
    assert grads.keys() == ref_grads.keys()
    total = sum(_relative_error(grads[n], ref_grads[n]) for n in grads) / len(grads)
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert total < 4 * tol, total


@pytest.mark.parametrize('arch', ['ti', 's'])
def test_eval_fast_paths_on_cuda(arch):
    """Eval without gradients (caches, chunked MLP, blockwise attention at a large size) equals the plain
    path on CUDA too."""
    torch.manual_seed(0)
    model = LIT(arch=arch).cuda().eval()
    model.init_weights()
    x = torch.randn(1, 3, 512, 768, device='cuda')
    plain_model = set_fast_path(copy.deepcopy(model), False)
    with torch.no_grad():
        fast = model(x)
        plain = plain_model(x)
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize('dropout_p', [0., 0.3])
def test_training_attention_function_on_cuda_equals_cpu_float64(dropout_p):
    """The blockwise training attention (used on the CPU; on CUDA the SDPA path is the default until it is
    measured there) computes the same on CUDA as on the CPU, in float64, dropout masks drawn on the device."""
    from mmlit.models.fast_path.rel_pos_attention import rel_pos_attention
    hw, heads, d = (6, 9), 4, 8
    N = hw[0] * hw[1]
    gen = torch.Generator().manual_seed(0)
    cpu = [torch.randn(2, heads, N, d, generator=gen, dtype=torch.float64) for _ in range(3)]
    cpu.append(torch.randn(heads, 2 * hw[0] - 1, 2 * hw[1] - 1, generator=gen, dtype=torch.float64))
    cuda = [t.cuda().requires_grad_() for t in cpu]
    out = rel_pos_attention(*cuda, hw, 0.35, dropout_p=dropout_p, seed=3, block_bytes=1)
    grads = torch.autograd.grad(out.square().sum(), cuda)
    # the CPU check of the same function with the CUDA masks is the plain formula's (dropout off)
    if dropout_p == 0:
        cpu = [t.requires_grad_() for t in cpu]
        ref = rel_pos_attention(*cpu, hw, 0.35)
        ref_grads = torch.autograd.grad(ref.square().sum(), cpu)
        torch.testing.assert_close(out.cpu(), ref, rtol=1e-10, atol=1e-10)
        for a, b in zip(grads, ref_grads):
            torch.testing.assert_close(a.cpu(), b, rtol=1e-10, atol=1e-10)
    else:  # deterministic for a seed: the same again
        again = rel_pos_attention(*cuda, hw, 0.35, dropout_p=dropout_p, seed=3, block_bytes=1)
        torch.testing.assert_close(again, out, rtol=0, atol=0)
        torch.autograd.gradcheck(lambda *t: rel_pos_attention(*t, hw, 0.35, dropout_p=dropout_p, seed=3),
                                 [t[:1, :2, :, :3].detach().clone().requires_grad_() for t in cuda[:3]] +
                                 [cuda[3][:2].detach().clone().requires_grad_()])
