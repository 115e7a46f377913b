"""The fast attention paths give the plain computation's results."""
import pytest
import torch

from mmlit.models.fast_path import attention as fast_attention_module
from mmlit.models.fast_path import rel_pos_bias_from_table, set_fast_path
from mmlit.models.fast_path.rel_pos_bias import rel_pos_bias_row_windows, rel_pos_bias_rows_view
from mmlit.models.layers import GlobalMultiheadAttention
from mmlit.utils.compat import cpu_flash_takes_mask
from mmlit.visualization.attention_weights import reference_attention


def make_attention(rel_pos=True, heads=3, dims=24):
    torch.manual_seed(0)
    attn = set_fast_path(GlobalMultiheadAttention(dims, heads, rel_pos_shape=(5, 5) if rel_pos else None), True)
    attn.init_weights()
    if rel_pos:
        with torch.no_grad():
            attn.relative_position_bias_table.normal_(0, 1)
    return attn


@pytest.mark.parametrize('rel_pos', [True, False])
@pytest.mark.parametrize('hw', [(5, 5), (7, 4), (3, 9)])
def test_sdpa_equals_reference_attention(rel_pos, hw):
    attn = make_attention(rel_pos).eval()
    x = torch.randn(2, hw[0] * hw[1], 24)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, hw), reference_attention(attn, x, hw), rtol=1e-5, atol=1e-5)


def test_bias_rows_are_slices_of_the_full_bias():
    table = torch.randn(2, 2 * 6 - 1, 2 * 5 - 1)
    full = rel_pos_bias_from_table(table, (6, 5))
    buffer = torch.empty(2 * 6 * 5 * 30)
    for start, stop in [(0, 1), (2, 4), (5, 6), (0, 6)]:
        part = full[:, start * 5:stop * 5]
        torch.testing.assert_close(rel_pos_bias_from_table(table, (6, 5), rows=(start, stop)), part)
        # keys in reverse order, into a reused buffer
        for out in (None, buffer):
            torch.testing.assert_close(
                rel_pos_bias_from_table(table, (6, 5), rows=(start, stop), reversed_keys=True, out=out),
                part.flip(-1))


@pytest.mark.parametrize('hw', [(6, 5), (1, 4), (5, 1)])
def test_row_windows_view_every_row_of_the_bias(hw):
    """Each grid row's bias (queries' columns and keys' rows reversed) is a view of one tensor of 2/H of the
    bias: nothing copied."""
    H, W = hw
    table = torch.randn(2, 2 * H - 1, 2 * W - 1)
    full = rel_pos_bias_from_table(table, hw)  # (heads, H*W, H*W)
    windows = rel_pos_bias_row_windows(table, W)
    assert windows.shape == (2, W, 2 * H - 1, W)
    view = rel_pos_bias_rows_view(windows, H)
    assert view.shape == (H, 2, W, H * W)
    assert view.untyped_storage().data_ptr() == windows.untyped_storage().data_ptr()
    keys_rows_reversed = full.unflatten(2, (H, W)).flip(2).flatten(2, 3)
    for y in range(H):  # the queries' columns in reverse too
        torch.testing.assert_close(view[y], keys_rows_reversed[:, y * W:(y + 1) * W].flip(1), rtol=0, atol=0)


def spy_attention_paths(monkeypatch):
    """Record which large-bias path each call of the fast attention takes."""
    calls = []
    for name in ('row_batched_attention', 'blockwise_attention', 'rel_pos_attention'):
        real = getattr(fast_attention_module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(fast_attention_module, name, spy)
    return calls


@pytest.mark.parametrize('hw', [(9, 7), (4, 11)])
def test_row_batched_attention_in_inference(monkeypatch, hw):
    """Inference on CPU with a large bias: rows of queries batched over views of the bias, when torch's CPU
    flash kernel takes a mask (torch >= 2.3); blocks of rows on older torch and when the windows would pass
    their budget; with gradients, the training function (rel_pos_attention). Every path gives the plain
    formula's outputs."""
    attn = make_attention().eval()
    x = torch.randn(2, hw[0] * hw[1], 24)
    monkeypatch.setattr(fast_attention_module, 'WHOLE_BIAS_BYTES', 0)  # every bias counts as large
    calls = spy_attention_paths(monkeypatch)
    with torch.no_grad():
        ref = reference_attention(attn, x, hw)
        torch.testing.assert_close(attn(x, hw), ref, rtol=1e-5, atol=1e-5)
        assert calls == ['row_batched_attention' if cpu_flash_takes_mask() else 'blockwise_attention']
        windows_bytes = attn.num_heads * hw[1] * (2 * hw[0] - 1) * hw[1] * 4
        monkeypatch.setattr(fast_attention_module, 'BIAS_ROW_WINDOWS_BYTES', windows_bytes - 1)
        torch.testing.assert_close(attn(x, hw), ref, rtol=1e-5, atol=1e-5)
        assert calls[1:] == ['blockwise_attention']
    out = attn(x, hw)  # gradients wanted
    assert calls[2:] == ['rel_pos_attention'] and out.requires_grad
    torch.testing.assert_close(out.detach(), ref, rtol=1e-5, atol=1e-5)


def test_half_precision_inference_takes_blocks_of_rows(monkeypatch):
    """In bf16 CPU inference (autocast) a large bias goes in blocks of rows, not row-batched (float32 only):
    the flash kernel's half-precision products would pack the keys and values again for every grid row.
    The result is the float32 plain formula's, to bf16's rounding."""
    attn = make_attention().eval()
    hw = (9, 7)
    x = torch.randn(2, hw[0] * hw[1], 24)
    monkeypatch.setattr(fast_attention_module, 'WHOLE_BIAS_BYTES', 0)
    calls = spy_attention_paths(monkeypatch)
    with torch.no_grad():
        ref = reference_attention(attn, x, hw)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = attn(x, hw)
    assert out.dtype == torch.bfloat16 and calls == ['blockwise_attention']
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)


def test_cpu_flash_takes_a_strided_mask():
    """The row-batched path's premise, checked on the running torch: the CPU flash kernel reads a strided mask
    (a view whose rows overlap) and stride-0 keys and values as it reads them made contiguous."""
    if not cpu_flash_takes_mask():
        pytest.skip('this torch has no CPU flash kernel with a mask; the row-batched path is off')
    q, k, v = torch.randn(3, 4, 5, 8), torch.randn(1, 4, 30, 8), torch.randn(1, 4, 30, 8)
    base = torch.randn(4, 60)
    mask = base.as_strided((3, 4, 5, 30), (2, 60, 3, 1))
    out = torch.nn.functional.scaled_dot_product_attention(q, k.expand(3, -1, -1, -1), v.expand(3, -1, -1, -1),
                                                           attn_mask=mask)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k.expand(3, -1, -1, -1).contiguous(),
                                                           v.expand(3, -1, -1, -1).contiguous(),
                                                           attn_mask=mask.contiguous())
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


def test_blockwise_attention_equals_whole(monkeypatch):
    """Where the training function does not run (CUDA; inference on torch < 2.3), large grids go over blocks
    of query rows: outputs and gradients are those of one block."""
    attn = make_attention()
    hw = (9, 7)
    q, k, v = (torch.randn(2, 3, 63, 8, requires_grad=True) for _ in range(3))
    table = fast_attention_module.resized_table(attn, hw, torch.float32)
    whole = fast_attention_module.blockwise_attention(q, k, v, table, hw, 0., rows=9)
    tensors = (q, k, v, attn.relative_position_bias_table)
    grads_whole = torch.autograd.grad(whole.square().sum(), tensors)
    calls = []
    real = rel_pos_bias_from_table

    def spy(table, hw, rows=None, **kwargs):
        calls.append(rows)
        return real(table, hw, rows=rows, **kwargs)

    monkeypatch.setattr(fast_attention_module, 'rel_pos_bias_from_table', spy)
    table = fast_attention_module.resized_table(attn, hw, torch.float32)
    blocks = fast_attention_module.blockwise_attention(q, k, v, table, hw, 0., rows=2)
    assert calls == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 9)]
    torch.testing.assert_close(blocks, whole, rtol=1e-5, atol=1e-5)
    for got, want in zip(torch.autograd.grad(blocks.square().sum(), tensors), grads_whole):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # inference reuses one buffer for every block
        torch.testing.assert_close(fast_attention_module.blockwise_attention(q, k, v, table, hw, 0., rows=2), whole)


def test_eval_cache_reuses_and_invalidates(monkeypatch):
    """In eval mode the resized table is kept per grid size while the table is unchanged; the whole
    (heads, N, N) bias is built per call and never kept (LIT-B at 384x384 would hold 365 MiB)."""
    attn = make_attention().eval()
    calls = []
    real = fast_attention_module.resize_rel_pos_table

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fast_attention_module, 'resize_rel_pos_table', spy)
    x = torch.randn(1, 30, 24)
    with torch.no_grad():
        first = attn(x, (5, 6))
        assert attn(x, (5, 6)).equal(first) and len(calls) == 1  # cached
        kept = [c.value for c in attn.__dict__['_param_caches'].values() if c.value is not None]
        assert sum(t.numel() for t in kept) == 3 * 9 * 11  # the (heads, 2H-1, 2W-1) table alone
        attn(torch.randn(1, 12, 24), (3, 4))
        assert len(calls) == 2  # another size: recomputed
        attn(x, (5, 6))
        assert len(calls) == 3  # one size is kept
        # weights changed in place (as an optimizer step or load_state_dict does): recomputed
        attn.relative_position_bias_table.add_(1.)
        changed = attn(x, (5, 6))
        assert len(calls) == 4
        torch.testing.assert_close(changed, reference_attention(attn, x, (5, 6)), rtol=1e-5, atol=1e-5)
        attn.load_state_dict(make_attention().state_dict())
        attn(x, (5, 6))
        assert len(calls) == 5
    # training, or gradients wanted: never cached
    attn.train()
    attn(x, (5, 6))
    attn(x, (5, 6))
    assert len(calls) == 7
    attn.eval()
    out = attn(x, (5, 6))
    assert len(calls) == 8 and out.requires_grad
    out.sum().backward()
    assert attn.relative_position_bias_table.grad is not None
