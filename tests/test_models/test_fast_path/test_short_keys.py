"""HiLo's fast path over few keys: two matmuls where they are faster, the flash kernel elsewhere."""
import pytest
import torch
import torch.nn.functional as F

from mmlit.models.fast_path import set_fast_path, short_keys
from mmlit.models.fast_path.short_keys import SHORT_KEYS, short_key_attention
from mmlit.models.layers import HiLoAttention


def calls_to_sdpa(monkeypatch):
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return F.scaled_dot_product_attention(*args, **kwargs)

    monkeypatch.setattr(short_keys, 'F', type('F', (), dict(scaled_dot_product_attention=staticmethod(counting))))
    return calls


@pytest.mark.parametrize('shape', [(950, 2, 4, 4), (8, 10, 196, 49), (1, 10, 200, SHORT_KEYS + 1)])
def test_short_key_attention_is_sdpa(shape, monkeypatch):
    B, heads, L, S = shape
    q, k, v = torch.randn(B, heads, L, 32), torch.randn(B, heads, S, 32), torch.randn(B, heads, S, 16)
    calls = calls_to_sdpa(monkeypatch)
    out = short_key_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), rtol=1e-5, atol=1e-5)
    assert len(calls) == (S > SHORT_KEYS)  # few keys: the matmuls; more: the flash kernel


def test_large_scores_take_the_flash_kernel(monkeypatch):
    monkeypatch.setattr(short_keys, 'SHORT_SCORES_BYTES', 1024)
    calls = calls_to_sdpa(monkeypatch)
    short_key_attention(*(torch.randn(1, 2, 64, 8) for _ in range(3)))
    assert len(calls) == 1


def test_hilo_fast_path_switch(monkeypatch):
    """HiLo with the fast path gives the plain (SDPA) output, with padding, and gradients; its few keys take
    the matmuls, and the plain path calls SDPA for both branches."""
    from mmlit.models.layers import attention as layer_attention
    torch.manual_seed(0)
    attn = set_fast_path(HiLoAttention(64, 4, window_size=2, alpha=0.5), True)
    x = torch.randn(2, 7 * 9, 64, requires_grad=True)
    plain_sdpa = []
    real_sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(layer_attention.F, 'scaled_dot_product_attention',
                        lambda *a, **k: plain_sdpa.append(a[0].shape) or real_sdpa(*a, **k))
    fast_sdpa = calls_to_sdpa(monkeypatch)
    fast = attn(x, (7, 9))
    (gx_fast, ) = torch.autograd.grad(fast.square().sum(), x)
    assert not fast_sdpa and not plain_sdpa  # 4 keys per window, 20 pooled keys: the matmuls
    set_fast_path(attn, False)
    plain = attn(x, (7, 9))
    (gx_plain, ) = torch.autograd.grad(plain.square().sum(), x)
    assert len(plain_sdpa) == 2 and not fast_sdpa  # Hi-Fi and Lo-Fi through torch's SDPA
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx_fast, gx_plain, rtol=1e-4, atol=1e-5)
