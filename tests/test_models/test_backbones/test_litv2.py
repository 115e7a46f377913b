"""LITv2: registry builds, sizes, any input size, HiLo's two branches, training, freezing."""
import pytest
import torch
import torch.nn.functional as F

import mmlit  # noqa: F401
from mmlit.models import LITv2
from mmlit.models.fast_path import set_fast_path
from mmlit.models.layers import HiLoAttention

SMALL = dict(embed_dims=[16, 32, 64, 128], depths=[1, 2, 2, 1], num_heads=[1, 2, 4, 4], mlp_ratios=[4] * 4)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_builds_from_every_registry(scope):
    registry = pytest.importorskip(f'{scope}.registry')
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        for type_name in ('mmlit.LITv2', 'LITv2'):
            model = registry.MODELS.build(dict(type=type_name, arch=SMALL))
            assert type(model) is LITv2


@pytest.mark.parametrize('arch,params', [('s', 27.08), ('m', 48.06), ('b', 85.5)])
def test_paper_sizes(arch, params):
    """Backbone parameters; with the 1000-class head: 28M / 49M / 87M (the paper's table)."""
    model = LITv2(arch=arch)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(count - params) < 0.01, count
    head = model.embed_dims[-1] * 1000 + 1000
    assert round(count + head / 1e6) == {'s': 28, 'm': 49, 'b': 87}[arch]
    hilo = model.stages[2].blocks[0].attn
    assert isinstance(hilo, HiLoAttention) and hilo.window_size == 2
    assert (hilo.hi_heads, hilo.lo_heads) == {'s': (2, 10), 'm': (2, 10), 'b': (2, 14)}[arch]
    assert model.stages[3].blocks[0].attn.lo_heads == model.arch_settings['num_heads'][3]  # window 1: global


@pytest.mark.parametrize('hw', [(64, 64), (61, 93), (33, 47), (97, 31)])
@pytest.mark.parametrize('local_ws', [(0, 0, 2, 1), (0, 0, 4, 1), (0, 0, 3, 2)])
def test_any_input_size(hw, local_ws):
    model = LITv2(arch=SMALL, local_ws=local_ws, drop_path_rate=0.).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *hw))
    for i, out in enumerate(outs):
        stride = 4 * 2**i
        size = [-(-s // 4) for s in hw]
        for _ in range(i):
            size = [-(-s // 2) for s in size]
        assert out.shape == (1, SMALL['embed_dims'][i], *size), (i, stride)
        assert torch.isfinite(out).all()


def test_hilo_with_window_one_is_global_attention():
    """Window 1: every head Lo-Fi, nothing pooled: softmax(QK^T / sqrt(d)) V over all tokens."""
    torch.manual_seed(0)
    attn = HiLoAttention(32, 4, window_size=1, alpha=0.5)
    assert attn.hi_heads == 0 and attn.lo_heads == 4
    x = torch.randn(2, 35, 32)
    q = attn.lo_q(x).view(2, 35, 4, 8).transpose(1, 2)
    k, v = attn.lo_kv(x).view(2, 35, 2, 4, 8).permute(2, 0, 3, 1, 4)
    w = (q @ k.transpose(-2, -1) / 8**0.5).softmax(-1)
    expected = attn.lo_proj((w @ v).transpose(1, 2).reshape(2, 35, 32))
    torch.testing.assert_close(attn(x, (5, 7)), expected, rtol=1e-5, atol=1e-5)


def test_hilo_branches_written_out():
    """Hi-Fi heads attend within 2x2 windows, Lo-Fi heads to the windows' means; outputs concatenated."""
    torch.manual_seed(0)
    attn = HiLoAttention(24, 4, window_size=2, alpha=0.5)  # 2 Hi-Fi heads, 2 Lo-Fi heads, d = 6
    H, W = 4, 6
    x = torch.randn(1, H * W, 24)
    grid = x.view(1, H, W, 24)
    hi = torch.zeros(1, H, W, 12)
    for i in range(0, H, 2):
        for j in range(0, W, 2):
            window = grid[:, i:i + 2, j:j + 2].reshape(1, 4, 24)
            q, k, v = attn.hi_qkv(window).view(1, 4, 3, 2, 6).permute(2, 0, 3, 1, 4)
            out = ((q @ k.transpose(-2, -1) / 6**0.5).softmax(-1) @ v).transpose(1, 2).reshape(1, 2, 2, 12)
            hi[:, i:i + 2, j:j + 2] = out
    hi = attn.hi_proj(hi)
    pooled = F.avg_pool2d(grid.permute(0, 3, 1, 2), 2).flatten(2).transpose(1, 2)
    q = attn.lo_q(x).view(1, -1, 2, 6).transpose(1, 2)
    k, v = attn.lo_kv(pooled).view(1, -1, 2, 2, 6).permute(2, 0, 3, 1, 4)
    lo = attn.lo_proj(((q @ k.transpose(-2, -1) / 6**0.5).softmax(-1) @ v).transpose(1, 2).reshape(1, H, W, 12))
    expected = torch.cat((hi, lo), -1).view(1, H * W, 24)
    torch.testing.assert_close(attn(x, (H, W)), expected, rtol=1e-5, atol=1e-5)


def test_trains_and_freezes():
    model = LITv2(arch=SMALL, frozen_stages=2, drop_path_rate=0.1)
    model.init_weights()
    model.train()
    sum(o.square().mean() for o in model(torch.randn(2, 3, 64, 96))).backward()
    for name, p in model.named_parameters():
        frozen = name.startswith(('patch_embed.', 'stages.0.', 'stages.1.', 'norm1.'))
        assert (p.grad is None) == frozen, name
        if not frozen:
            assert torch.isfinite(p.grad).all(), name
    assert not model.stages[1].training and model.stages[2].training


def test_fast_path_switch_gives_the_same():
    model = LITv2(arch=SMALL, drop_path_rate=0.).eval()
    # stage 1: 56 x 40 tokens, more than one MLP chunk (not with a dw conv); HiLo's few keys take matmuls
    x = torch.randn(1, 3, 224, 160)
    with torch.no_grad():
        fast = model(x)
        plain = set_fast_path(model, False)(x)
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match='local_ws needs 4'):
        LITv2(arch='s', local_ws=(2, 1))
    with pytest.raises(ValueError, match=r'local_ws\[2\] must be >= 1'):
        LITv2(arch='s', local_ws=(0, 0, 0, 1))
    with pytest.raises(ValueError, match='no class token'):
        LITv2(arch='s', out_type='cls_token', out_indices=(3, ))
    with pytest.raises(ValueError, match="Unknown LITv2 arch 'ti'"):
        LITv2(arch='ti')
