"""The training attention with a relative position bias (mmlit.models.fast_path.rel_pos_attention) gives the
plain formula's outputs and gradients, with and without dropout, in half precision, and keeps nothing of
size N x N for the backward."""
import copy

import pytest
import torch

from mmlit.models import LIT
from mmlit.models.fast_path import attention as fast_attention_module
from mmlit.models.fast_path import rel_pos_attention as rpa
from mmlit.models.fast_path import set_fast_path
from mmlit.models.layers import GlobalMultiheadAttention
from mmlit.models.utils import rel_pos_bias_by_index


@pytest.fixture(autouse=True)
def every_bias_counts_as_large(monkeypatch):
    """The module takes the training function for biases over WHOLE_BIAS_BYTES: here, every bias."""
    monkeypatch.setattr(fast_attention_module, 'WHOLE_BIAS_BYTES', 0)


def plain(q, k, v, table, hw, scale, mask=None):
    """softmax((q * scale) k^T + B) v, B gathered by index; ``mask`` (scaled) applied to the probabilities."""
    attn = ((q * scale) @ k.transpose(-2, -1) + rel_pos_bias_by_index(table, hw)).softmax(-1)
    return (attn if mask is None else attn * mask) @ v


def inputs(B, heads, hw, d, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    N = hw[0] * hw[1]
    q, k, v = (torch.randn(B, heads, N, d, generator=g, dtype=dtype).requires_grad_() for _ in range(3))
    table = torch.randn(heads, 2 * hw[0] - 1, 2 * hw[1] - 1, generator=g, dtype=dtype).requires_grad_()
    return q, k, v, table


def grads(out, tensors, seed=1):
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, tensors, cotangent)


def row_bytes(hw, itemsize=8):
    """Bytes of one head's scores for one grid row of queries."""
    return hw[1] * hw[0] * hw[1] * itemsize


# (B, heads, (H, W), d, block bytes): one block; all rows of 2 of 3 heads; blocks of 2 rows of one head
# (the last one short); one row of one head; a single row and a single column of tokens
CASES = [(2, 3, (5, 7), 4, 10**9), (2, 3, (5, 7), 4, 2 * 5 * row_bytes((5, 7))),
         (1, 3, (5, 6), 5, 2 * row_bytes((5, 6))), (2, 2, (6, 5), 3, 1), (1, 2, (1, 9), 4, 1), (1, 2, (7, 1), 4, 1)]


@pytest.mark.parametrize('B, heads, hw, d, block_bytes', CASES)
def test_equals_plain_formula_in_float64(B, heads, hw, d, block_bytes):
    q, k, v, table = inputs(B, heads, hw, d)
    out = rpa.rel_pos_attention(q, k, v, table, hw, 0.3, block_bytes=block_bytes)
    ref = plain(q, k, v, table, hw, 0.3)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads(out, (q, k, v, table)), grads(ref, (q, k, v, table))):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)


def test_block_shapes():
    """Rows of one head first (the keys' and values' gradients are products over the block's queries), then
    heads of all rows."""
    hw = (5, 7)
    one = row_bytes(hw, 4)
    assert rpa._block_shape(3, hw, 4, 10**9) == (3, 5)  # everything in one block
    assert rpa._block_shape(3, hw, 4, 2 * 5 * one) == (2, 5)  # all rows of 2 heads
    assert rpa._block_shape(3, hw, 4, 2 * one) == (1, 2)  # 2 rows of one head
    assert rpa._block_shape(3, hw, 4, 1) == (1, 1)  # never less than one row of one head


def test_reduce_by_offset_sums_each_relative_offset():
    """The skewed views give what a scatter-add of dS into the table by offset index gives."""
    H, W, rows, heads = 4, 5, 2, 3
    N = H * W
    dscores = torch.randn(heads, rows * W, N, dtype=torch.float64)  # keys by column
    padded = torch.cat([dscores, torch.zeros_like(dscores)], dim=-1)
    got = rpa._reduce_by_offset(padded, (H, W), rows)  # (heads, 2W-1, H + rows - 1): [c, r]
    want = torch.zeros(heads, 2 * W - 1, H + rows - 1, dtype=torch.float64)
    for y1 in range(rows):
        for x1 in range(W):
            for b in range(W):
                for a in range(H):
                    want[:, x1 + b, y1 + a] += dscores[:, y1 * W + x1, b * H + a]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def dropout_masks(seed, B, heads, hw, block_bytes, keep, dtype):
    """The masks the function draws, assembled into one (B, heads, N, N) tensor (keys in grid order)."""
    H, W = hw
    N = H * W
    group, rows = rpa._block_shape(heads, hw, torch.finfo(dtype).bits // 8, block_bytes)
    generator = rpa._generator(seed, torch.device('cpu'))
    masks = torch.empty(B, heads, N, N, dtype=dtype)
    for image in range(B):
        for h0 in range(0, heads, group):
            h1 = min(h0 + group, heads)
            for start in range(0, H, rows):
                stop = min(start + rows, H)
                block = rpa._dropout_mask(generator, (h1 - h0, (stop - start) * W, N), keep, dtype, masks.device)
                masks[image, h0:h1, start * W:stop * W] = block
    # the function's keys go by column, both axes reversed: back to grid order
    return rpa._keys_by_row(masks.transpose(-2, -1), hw).transpose(-2, -1)


@pytest.mark.parametrize('block_bytes', [10**9, 1])
def test_dropout_is_the_plain_formulas_with_the_same_masks(block_bytes):
    B, heads, hw, d, p = 2, 3, (4, 5), 4, 0.4
    q, k, v, table = inputs(B, heads, hw, d)
    out = rpa.rel_pos_attention(q, k, v, table, hw, 0.3, dropout_p=p, seed=7, block_bytes=block_bytes)
    masks = dropout_masks(7, B, heads, hw, block_bytes, 1 - p, torch.float64)
    kept = (masks > 0).double().mean().item()
    assert 0.5 < kept < 0.7 and set(masks.unique().tolist()) == {0., 1 / (1 - p)}
    ref = plain(q, k, v, table, hw, 0.3, mask=masks)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads(out, (q, k, v, table)), grads(ref, (q, k, v, table))):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)
    # a seed drawn from torch's generator: reproducible under torch.manual_seed, new masks each call
    torch.manual_seed(3)
    first = rpa.rel_pos_attention(q, k, v, table, hw, 0.3, dropout_p=p)
    second = rpa.rel_pos_attention(q, k, v, table, hw, 0.3, dropout_p=p)
    torch.manual_seed(3)
    torch.testing.assert_close(rpa.rel_pos_attention(q, k, v, table, hw, 0.3, dropout_p=p), first, rtol=0, atol=0)
    assert not torch.allclose(first, second)


def test_gradcheck_with_dropout():
    q, k, v, table = inputs(1, 2, (3, 4), 3)
    torch.autograd.gradcheck(
        lambda *t: rpa.rel_pos_attention(*t, (3, 4), 0.5, dropout_p=0.3, seed=11, block_bytes=1), (q, k, v, table))


def test_wrong_number_of_tokens_is_refused():
    q, k, v, table = inputs(1, 2, (3, 4), 3)
    with pytest.raises(ValueError, match='3x5 grid'):
        rpa.rel_pos_attention(q, k, v, table, (3, 5), 0.5)


def make_attention(heads=3, dims=24, rel_pos_shape=(5, 5), **kwargs):
    torch.manual_seed(0)
    attn = set_fast_path(GlobalMultiheadAttention(dims, heads, rel_pos_shape=rel_pos_shape, **kwargs), True)
    attn.init_weights()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_(0, 1)
    return attn.train()


def test_module_trains_through_it_with_the_plain_formulas_gradients(monkeypatch):
    """In training on the CPU, GlobalMultiheadAttention runs the new function (spied), and its outputs and
    gradients, the stored table's through the resize included, are the plain path's (float64)."""
    attn = make_attention().double()
    hw = (6, 8)  # the table (9 x 9) resized to 11 x 15
    x = torch.randn(2, 48, 24, dtype=torch.float64, requires_grad=True)
    calls = []
    real = rpa._RelPosAttention.apply
    monkeypatch.setattr(rpa._RelPosAttention, 'apply', lambda *a: calls.append(a[4]) or real(*a))
    results = []
    for fast in (True, False):
        set_fast_path(attn, fast)
        attn.zero_grad()
        x.grad = None
        out = attn(x, hw)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
        results.append((out, x.grad, {n: p.grad for n, p in attn.named_parameters()}))
    assert calls == [hw]
    (out, dx, dp), (ref, dx_ref, dp_ref) = results
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-11, atol=1e-11)
    assert dp.keys() == dp_ref.keys() and 'relative_position_bias_table' in dp
    for name in dp:
        torch.testing.assert_close(dp[name], dp_ref[name], rtol=1e-11, atol=1e-11)


def saved_bytes(fn):
    """Bytes of the distinct storages autograd keeps for the backward while ``fn()`` runs."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(storages.values())


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_training_keeps_nothing_of_size_n_squared(dtype):
    """What one training attention layer keeps for its backward: its input, q, k, v, the output, the small
    tables, the log-sum-exp: a few times N x C, far below the heads x N x N probabilities that the plain
    formula keeps."""
    heads, dims, hw = 4, 32, (24, 32)
    N = hw[0] * hw[1]
    scores_bytes = heads * N * N * 4
    attn = make_attention(heads, dims, rel_pos_shape=(7, 7))
    x = torch.randn(1, N, dims, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        out, kept = saved_bytes(lambda: attn(x, hw))
        set_fast_path(attn, False)
        _, kept_plain = saved_bytes(lambda: attn(x, hw))
    assert kept_plain > scores_bytes  # the test sees the plain formula's N x N probabilities
    assert kept < min(scores_bytes / 10, 8 * N * dims * 4), (kept, scores_bytes)
    out.float().sum().backward()


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_precision_autocast_accumulates_in_float32(dtype):
    """Under autocast the products run in half precision and the scores, the softmax statistics and the
    table's gradient in float32: close to the float32 results, and the saved statistics are float32."""
    attn = make_attention(heads=2, dims=32, rel_pos_shape=(4, 4))
    hw = (5, 6)
    x = torch.randn(2, 30, 32, requires_grad=True)
    out32 = attn(x, hw)
    ref = torch.autograd.grad(out32.square().sum(), [x, attn.relative_position_bias_table])
    saved = []
    real = rpa._RelPosAttention.backward

    def spy(ctx, *args):
        saved.append([t.dtype for t in ctx.saved_tensors])
        return real(ctx, *args)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(rpa._RelPosAttention, 'backward', staticmethod(spy))
        try:
            with torch.autocast('cpu', dtype=dtype):
                out = attn(x, hw)
                got = torch.autograd.grad(out.float().square().sum(), [x, attn.relative_position_bias_table])
        except RuntimeError as error:
            if dtype == torch.float16 and 'Bfloat16' in str(error):
                pytest.skip('CPU autocast takes bfloat16 only on this torch (2.1), which has no float16 CPU matmul')
            raise
    assert saved and saved[0][:3] == [dtype] * 3 and saved[0][3] == saved[0][5] == torch.float32  # table, lse
    assert got[1].dtype == torch.float32
    tol = 0.02 if dtype == torch.float16 else 0.05
    assert (out.float() - out32).norm() / out32.norm() < tol
    for g, r in zip(got, ref):
        assert (g.float() - r).norm() / r.norm() < 2 * tol


def test_lit_backbone_dropout_and_checkpointing():
    """LIT-S in training with attention dropout: checkpointed blocks draw the same masks when they run
    again, so outputs and gradients equal the uncheckpointed model's; dropout changes the outputs."""
    base = LIT(arch='s', attn_drop_rate=0.2, drop_path_rate=0.)
    base.init_weights()
    ckpt = LIT(arch='s', attn_drop_rate=0.2, drop_path_rate=0., with_cp=True)
    ckpt.load_state_dict(base.state_dict())
    x = torch.randn(1, 3, 96, 64)
    results = []
    for model in (base, ckpt):
        model.train()
        torch.manual_seed(5)
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        results.append((outs, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert results[0][1].keys() == results[1][1].keys()
    for name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][name], rtol=1e-4, atol=1e-6)
    no_drop = copy.deepcopy(base)
    for module in no_drop.modules():
        if isinstance(module, GlobalMultiheadAttention):
            module.attn_drop = 0.
    torch.manual_seed(5)
    assert not torch.allclose(no_drop(x)[3], results[0][0][3])
