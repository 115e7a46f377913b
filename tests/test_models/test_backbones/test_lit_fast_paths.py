"""The backbone's fast paths give the plain results: cached embeddings, torch.compile, bf16, ONNX."""
import pytest
import torch

from mmlit.models import LIT, LITv2
from mmlit.models.fast_path import FAST_CLASSES, PLAIN_CLASSES, ParamCache, set_fast_path


def randomised_lit(arch, seed=0, **kwargs):
    """A LIT whose DTM offsets, BN statistics and tables are all non-trivial."""
    torch.manual_seed(seed)
    if arch.startswith('litv2'):
        model = LITv2(arch=arch[len('litv2-'):], out_indices=(0, 1, 2, 3), **kwargs)
    else:
        model = LIT(arch=arch, out_indices=(0, 1, 2, 3), **kwargs)
    model.init_weights()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'conv_offset' in name or 'relative_position_bias_table' in name:
                p.normal_(0, 0.05 if 'conv_offset' in name else 1.)
        for name, b in model.named_buffers():
            if name.endswith('running_mean'):
                b.normal_(0, 0.1)
            elif name.endswith('running_var'):
                b.uniform_(0.5, 1.5)
    return model.eval()


def uncached(model, x, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(ParamCache, 'usable', staticmethod(lambda module, params: False))
        with torch.no_grad():
            return model(x)


@pytest.mark.parametrize('arch', ['ti', 's'])
def test_cached_equals_uncached(arch, monkeypatch):
    model = randomised_lit(arch)
    for hw in [(64, 96), (96, 64), (64, 96)]:
        x = torch.randn(1, 3, *hw)
        with torch.no_grad():
            cached = model(x)
            again = model(x)
        for a, b, c in zip(cached, again, uncached(model, x, monkeypatch)):
            assert a.equal(b)
            torch.testing.assert_close(a, c, rtol=0, atol=0)


@pytest.mark.parametrize('arch', ['ti', 's', 'litv2-s'])
def test_fast_path_equals_plain_formulas(arch):
    """The one switch: every module's fast path on (the default) or off gives the same outputs (eval, at a
    size where the MLP goes in chunks and the attention over rows of queries: batched over views of the bias
    on torch >= 2.3, in blocks on older torch) and the same gradients (the attention in blocks)."""
    from mmlit.models.fast_path import attention
    model = randomised_lit(arch, drop_path_rate=0.)
    x = torch.randn(1, 3, 224, 160)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(attention, 'WHOLE_BIAS_BYTES', 2**16)  # stage-3 biases count as large
        m.setattr(attention, 'BIAS_BLOCK_BYTES', 2**15)
        with torch.no_grad():
            fast = model(x)
            plain = set_fast_path(model, False)(x)
    assert not any(type(mod) in PLAIN_CLASSES for mod in model.modules())
    assert any(type(mod) in PLAIN_CLASSES for mod in set_fast_path(model, True).modules())
    assert not any(type(mod) in FAST_CLASSES for mod in model.modules())  # no plain layer left
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    grads = []
    for enabled in (True, False):
        set_fast_path(model, enabled).train().zero_grad()
        sum(o.square().mean() for o in model(x[..., :96, :64])).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-3, atol=1e-5)


def test_cache_follows_new_weights(monkeypatch):
    model = randomised_lit('s')
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)  # fill the caches
        other = randomised_lit('s', seed=1)
        model.load_state_dict(other.state_dict())
        for a, b in zip(model(x), other(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('arch', ['ti', 's'])
def test_compiles_without_graph_breaks(arch):
    model = randomised_lit(arch)
    x = torch.randn(2, 3, 64, 96)
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    torch._dynamo.reset()
    # eval and training graphs (aot_eager: the graphs inductor would compile, without the C++ build)
    compiled = torch.compile(model, fullgraph=True, backend='aot_eager')
    with torch.no_grad():
        # compiled, the DTM samples with grid_sample, whose normalised coordinates round at 1e-6 pixel
        for a, b in zip(compiled(x), model(x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    model.train()
    torch.manual_seed(0)
    sum(o.square().mean() for o in compiled(x)).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    torch.manual_seed(0)
    sum(o.square().mean() for o in model(x)).backward()
    assert grads.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[n], p.grad, rtol=1e-3, atol=1e-5)
    torch._dynamo.reset()


def test_inductor_compiled_block_equals_eager():
    model = randomised_lit('s')
    block = model.stages[2].blocks[0].eval()
    x = torch.randn(2, 48, 384)
    compiled = torch.compile(block, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, (6, 8)), block(x, (6, 8)), rtol=1e-4, atol=1e-4)
    torch._dynamo.reset()


@pytest.mark.parametrize('arch', ['ti', 's'])
def test_bf16_autocast_on_cpu(arch):
    model = randomised_lit(arch)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs = model(x)
    for out, r in zip(outs, ref):
        assert out.shape == r.shape and torch.isfinite(out).all()
        rel = (out.float() - r).norm() / r.norm()  # bf16 keeps ~3 digits; 16-26 blocks compound it
        assert rel < 0.1, rel
        assert torch.cosine_similarity(out.float().flatten(), r.flatten(), dim=0) > 0.99
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        sum(o.float().mean() for o in model(x)).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize('arch', ['ti', 's'])
def test_onnx_export_matches_eager(arch, tmp_path):
    """Through torch's dynamo exporter where it exists, else (torch < 2.5) its TorchScript exporter."""
    from mmlit.utils.compat import onnx_has_dynamo_exporter
    from mmlit_tools.deploy import export_onnx, onnx_max_error
    pytest.importorskip('onnxruntime')
    if onnx_has_dynamo_exporter():
        pytest.importorskip('onnxscript')
    model = randomised_lit(arch)
    x = torch.randn(1, 3, 64, 96)
    path = str(tmp_path / f'{arch}.onnx')
    names = export_onnx(model, x, path)
    assert names == ['out0', 'out1', 'out2', 'out3']
    errors = onnx_max_error(path, model, torch.randn_like(x))
    assert max(errors) < 1e-4, errors


def test_onnx_samples_at_integer_indices(tmp_path):
    """The exported DTM gathers its samples at integer pixel indices, no GridSample: a runtime that
    computes in bfloat16 cannot round the sampling points (normalised coordinates lose a pixel at 300)."""
    onnx = pytest.importorskip('onnx')
    from mmlit_tools.deploy import export_onnx, onnx_max_error
    model = randomised_lit('ti')
    path = str(tmp_path / 'ti.onnx')
    export_onnx(model, torch.randn(1, 3, 64, 96), path)
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert 'GridSample' not in ops and 'Gather' in ops, sorted(ops)
    assert max(onnx_max_error(path, model, torch.randn(1, 3, 64, 96))) < 1e-4
