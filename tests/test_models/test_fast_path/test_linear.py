"""oneDNN's fused linear layers give the plain layers' results, and run only where the module would
compute exactly that: float32 CPU inference, plain ``nn.Linear`` layers, no hooks, eval-mode dropouts."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from mmlit.models.fast_path import linear as linear_module
from mmlit.models.fast_path import set_fast_path
from mmlit.models.fast_path.linear import fused_linear, onednn_linear_usable
from mmlit.models.layers import GlobalMultiheadAttention, MLPBlock, MSABlock

needs_onednn = pytest.mark.skipif(not linear_module._HAS_ONEDNN_LINEAR,
                                  reason='torch without oneDNN, or not an x86 CPU with AVX2 / AVX-512')
FUSED = 'mkldnn::_linear_pointwise'


def _layer(cin=24, cout=40, bias=True):
    torch.manual_seed(0)
    layer = nn.Linear(cin, cout, bias=bias)
    with torch.no_grad():
        if bias:
            layer.bias.normal_(0, 1)  # a bias large enough to matter
    return layer


def _ops(fn) -> set:
    """Names of the ops ``fn()`` runs."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {event.key for event in prof.key_averages()}


def _block(block_type='mlp'):
    torch.manual_seed(0)
    if block_type == 'msa':
        block = MSABlock(16, 2, mlp_ratio=4, rel_pos_shape=(3, 3))
    else:  # LIT's MLP, or LITv2's with the depthwise conv
        block = MLPBlock(16, mlp_ratio=4, dw_conv=block_type == 'conv_ffn')
    block.init_weights()
    return set_fast_path(block, True).eval()


@needs_onednn
@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('shape', [(7, 24), (2, 33, 24)])
def test_fused_linear_equals_plain(bias, shape):
    layer = _layer(bias=bias)
    x = torch.randn(shape)
    residual = torch.randn(*shape[:-1], 40)
    with torch.no_grad():
        assert onednn_linear_usable(x, layer)
        plain = F.linear(x, layer.weight, layer.bias)
        torch.testing.assert_close(fused_linear(x, layer), plain, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fused_linear(x, layer, gelu=True), F.gelu(plain), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fused_linear(x, layer, residual=residual), residual + plain, rtol=1e-5, atol=1e-5)
        # a non-contiguous residual
        residual_t = residual.transpose(-1, -2).contiguous().transpose(-1, -2)
        torch.testing.assert_close(fused_linear(x, layer, residual=residual_t), residual + plain, rtol=1e-5, atol=1e-5)


def test_gelu_and_residual_together_is_an_error():
    layer = _layer()
    x = torch.randn(3, 24)
    with pytest.raises(ValueError, match='gelu or residual'):
        fused_linear(x, layer, gelu=True, residual=torch.zeros(3, 40))


@needs_onednn
@pytest.mark.filterwarnings('ignore:.*torch.jit.trace:FutureWarning')
@pytest.mark.filterwarnings('ignore:torch.ao.quantization is deprecated:DeprecationWarning')
@pytest.mark.filterwarnings('ignore:torch.quantize_per_tensor:UserWarning')
def test_usable_only_for_float32_cpu_inference_of_plain_linears():
    layer = _layer()
    x = torch.randn(3, 24)
    with torch.no_grad():
        assert onednn_linear_usable(x, layer)
        assert not onednn_linear_usable(x.double(), layer)
        assert not onednn_linear_usable(x, _layer().double())
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert not onednn_linear_usable(x, layer)
        torch.backends.mkldnn.enabled = False
        try:
            assert not onednn_linear_usable(x, layer)
        finally:
            torch.backends.mkldnn.enabled = True
        # a torch.jit.trace (FLOP counters) must record aten::linear
        seen = []
        torch.jit.trace(lambda t: seen.append(onednn_linear_usable(t, layer)) or t, x, check_trace=False)
        assert seen == [False]

        # layers whose forward is not F.linear(x, weight, bias) keep it
        class Scaled(nn.Linear):

            def forward(self, t):
                return 2 * super().forward(t)

        assert not onednn_linear_usable(x, Scaled(24, 40))
        quantized = torch.ao.quantization.quantize_dynamic(nn.Sequential(_layer()), {nn.Linear})[0]
        assert not onednn_linear_usable(x, quantized)
        # hooked layers keep their hooks
        handle = layer.register_forward_hook(lambda *_: None)
        assert not onednn_linear_usable(x, layer)
        handle.remove()
        handle = nn.modules.module.register_module_forward_pre_hook(lambda *_: None)
        assert not onednn_linear_usable(x, layer)
        handle.remove()
        assert onednn_linear_usable(x, layer)
    assert not onednn_linear_usable(x, layer)  # autograd needs the plain ops


@needs_onednn
@pytest.mark.parametrize('block_type', ['mlp', 'msa', 'conv_ffn'])
def test_blocks_take_the_fused_linears_in_cpu_inference(block_type):
    """In eval without gradients the MLP (and the attention's projections) run oneDNN's fused linears and
    no ``addmm``, with the plain results; in training, with gradients or with the fast path off they
    take the plain layers."""
    block = _block(block_type)
    x = torch.randn(2, 12, 16)
    hw = (3, 4)
    with torch.no_grad():
        fast = block(x, hw)
        ops = _ops(lambda: block(x, hw))
        assert FUSED in ops and 'aten::addmm' not in ops
        if block_type != 'conv_ffn':  # LITv2's GELU comes after the depthwise conv
            assert 'aten::gelu' not in ops
        set_fast_path(block, False)
        plain = block(x, hw)
        assert FUSED not in _ops(lambda: block(x, hw))
        set_fast_path(block, True)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    # with gradients, and in training mode without them
    assert FUSED not in _ops(lambda: block(x, hw))
    block.train()
    with torch.no_grad():
        assert FUSED not in _ops(lambda: block(x, hw))


@needs_onednn
def test_mlp_keeps_the_plain_layers_where_fusing_would_change_it():
    """The tanh GELU, another activation, a dropout or DropPath left in training mode in an eval model (MC
    dropout) and hooks on the MLP or its modules all keep the plain layers."""
    x = torch.randn(1, 6, 16)

    def fused(block):
        with torch.no_grad():
            return FUSED in _ops(lambda: block(x, (2, 3)))

    assert fused(_block())
    for act in (nn.GELU(approximate='tanh'), nn.ReLU()):
        block = _block()
        block.ffn.act = act
        assert not fused(block), act
    for name in ('ffn.drop', 'drop_path'):
        block = _block()
        block.get_submodule(name).train()
        assert not fused(block), name
    for name in ('ffn', 'ffn.act', 'ffn.fc1'):
        block = _block()
        block.get_submodule(name).register_forward_hook(lambda *_: None)
        assert not fused(block), name


@needs_onednn
def test_mc_dropout_still_drops():
    """A dropout switched back to training in an eval model still drops (the plain path runs)."""
    block = set_fast_path(MLPBlock(16, mlp_ratio=4, drop_rate=0.5), True).eval()
    block.ffn.drop.train()
    x = torch.randn(1, 64, 16)
    with torch.no_grad():
        torch.manual_seed(0)
        a = block(x, (8, 8))
        torch.manual_seed(1)
        b = block(x, (8, 8))
    assert not torch.equal(a, b)


@needs_onednn
def test_attention_projections_fused_equal_plain():
    torch.manual_seed(0)
    attn = set_fast_path(GlobalMultiheadAttention(24, 3), True).eval()
    attn.init_weights()
    x = torch.randn(2, 20, 24)
    with torch.no_grad():
        fast = attn(x, (4, 5))
        assert FUSED in _ops(lambda: attn(x, (4, 5)))
        plain = F.linear(x, attn.qkv.weight, attn.qkv.bias)
        q, k, v = plain.view(2, 20, 3, 3, 8).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 20, 24)
        torch.testing.assert_close(fast, attn.proj(out), rtol=1e-5, atol=1e-5)
        # a hook on a projection keeps the plain projections
        attn.proj.register_forward_hook(lambda *_: None)
        assert FUSED not in _ops(lambda: attn(x, (4, 5)))


@needs_onednn
def test_conv_ffn_keeps_the_plain_layers_where_fusing_would_change_it():
    """LITv2's MLP: a dropout or DropPath in training mode inside an eval model, or a hook on the MLP or a
    module it would skip, keep the plain layers."""
    x = torch.randn(1, 6, 16)

    def fused(block):
        with torch.no_grad():
            return FUSED in _ops(lambda: block(x, (2, 3)))

    assert fused(_block('conv_ffn'))
    for name in ('ffn.drop', 'drop_path'):
        block = _block('conv_ffn')
        block.get_submodule(name).train()
        assert not fused(block), name
    for name in ('', 'drop', 'fc2'):
        block = _block('conv_ffn')
        block.ffn.get_submodule(name).register_forward_pre_hook(lambda *_: None)
        assert not fused(block), name
