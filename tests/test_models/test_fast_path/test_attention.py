"""The fast attention paths give the plain computation's results."""
import pytest
import torch

from mmlit.models.fast_path import attention as fast_attention_module
from mmlit.models.fast_path import rel_pos_bias_from_table
from mmlit.models.layers import GlobalMultiheadAttention
from mmlit.models.layers.plain_attention import reference_attention


def make_attention(rel_pos=True, heads=3, dims=24):
    torch.manual_seed(0)
    attn = GlobalMultiheadAttention(dims, heads, rel_pos_shape=(5, 5) if rel_pos else None)
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


@pytest.mark.parametrize('train', [False, True])
def test_blockwise_attention_equals_whole(monkeypatch, train):
    """Large grids run over blocks of query rows; outputs and gradients are those of one block."""
    attn = make_attention().train(train)
    hw = (9, 7)
    x = torch.randn(2, 63, 24, requires_grad=True)
    out_whole = attn(x, hw)
    out_whole.square().sum().backward()
    grads_whole = [x.grad.clone(), attn.relative_position_bias_table.grad.clone()]
    x.grad = None
    attn.zero_grad()
    row_bytes = attn.num_heads * 7 * 63 * 4
    monkeypatch.setattr(fast_attention_module, 'BIAS_CACHE_BYTES', 0)  # every bias counts as large
    monkeypatch.setattr(fast_attention_module, 'BIAS_BLOCK_BYTES', 2 * row_bytes)  # blocks of 2 rows: 5 blocks
    calls = []
    real = rel_pos_bias_from_table

    def spy(table, hw, rows=None, **kwargs):
        calls.append(rows)
        return real(table, hw, rows=rows, **kwargs)

    monkeypatch.setattr(fast_attention_module, 'rel_pos_bias_from_table', spy)
    out_blocks = attn(x, hw)
    assert calls == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 9)]
    torch.testing.assert_close(out_blocks, out_whole, rtol=1e-5, atol=1e-5)
    out_blocks.square().sum().backward()
    torch.testing.assert_close(x.grad, grads_whole[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(attn.relative_position_bias_table.grad, grads_whole[1], rtol=1e-4, atol=1e-5)


def test_eval_cache_reuses_and_invalidates(monkeypatch):
    attn = make_attention().eval()
    calls = []
    real = rel_pos_bias_from_table

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fast_attention_module, 'rel_pos_bias_from_table', spy)
    x = torch.randn(1, 30, 24)
    with torch.no_grad():
        first = attn(x, (5, 6))
        assert attn(x, (5, 6)).equal(first) and len(calls) == 1  # cached
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
