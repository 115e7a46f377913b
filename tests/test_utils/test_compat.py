"""The torch features and private attributes mmlit reads (mmlit.utils.compat, and oneDNN's fused linear in
mmlit.models.fast_path.linear): each test fails when a torch release changes one, and the fallbacks give
the plain code."""
import pytest
import torch
import torch.nn as nn

from mmlit.models.fast_path import linear
from mmlit.models.fast_path.param_cache import ParamCache
from mmlit.utils import compat


def test_global_forward_hooks_are_seen():
    assert not compat.global_forward_hooks_registered()
    handle = nn.modules.module.register_module_forward_hook(lambda *_: None)
    try:
        assert compat.global_forward_hooks_registered()
    finally:
        handle.remove()
    handle = nn.modules.module.register_module_forward_pre_hook(lambda *_: None)
    try:
        assert compat.global_forward_hooks_registered()
    finally:
        handle.remove()
    assert not compat.global_forward_hooks_registered()


def test_global_forward_hooks_fallback(monkeypatch):
    """Without torch's registries, assume hooks: the fused linears give way to the modules."""
    monkeypatch.delattr(nn.modules.module, '_global_forward_hooks')
    assert compat.global_forward_hooks_registered()
    layer = nn.Linear(4, 4)
    with torch.no_grad():
        assert not linear.onednn_linear_usable(torch.randn(2, 4), layer)


def test_tensor_version_counts_in_place_changes():
    p = nn.Parameter(torch.zeros(3))
    before = compat.tensor_version(p)
    assert isinstance(before, int)
    with torch.no_grad():
        p.add_(1)
    assert compat.tensor_version(p) != before


def test_no_version_counter_means_no_cache(monkeypatch):
    module = nn.Linear(2, 2).eval()
    with torch.no_grad():
        assert ParamCache.usable(module, [module.weight])
        monkeypatch.setattr(compat, 'tensor_version', lambda t: None)
        from mmlit.models.fast_path import param_cache
        monkeypatch.setattr(param_cache, 'tensor_version', lambda t: None)
        assert not ParamCache.usable(module, [module.weight])


@pytest.mark.skipif(not (torch.backends.mkldnn.is_available()
                         and torch.backends.cpu.get_cpu_capability().startswith('AVX')),
                    reason='oneDNN\'s fused linear is used on x86 CPUs with AVX2 / AVX-512 only')
def test_onednn_fused_linear_is_detected_on_x86():
    """torch.ops.mkldnn._linear_pointwise with the overloads and arguments mmlit calls: if a torch release
    renames or reshapes it, this fails (and the fast path falls back to nn.Linear)."""
    assert linear._HAS_ONEDNN_LINEAR, 'torch.ops.mkldnn._linear_pointwise changed: update fast_path/linear.py'


def test_cpu_flash_attention_with_mask_is_detected():
    """CPU SDPA's flash kernel takes a mask from torch 2.3 on (mmlit's row-batched attention needs it)."""
    has_op = hasattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu')
    if not has_op:
        assert not compat.cpu_flash_takes_mask()
        pytest.skip('torch < 2.3: no CPU flash kernel with a mask')
    assert compat.cpu_flash_takes_mask(), 'the CPU flash kernel lost its attn_mask: update mmlit/utils/compat.py'
