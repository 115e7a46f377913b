"""The GEMM bound: a step's own matrix products, recorded and replayed alone."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmlit_tools.gemm_replay import record_gemms, replay_gemms


def test_records_the_products_of_forward_and_backward():
    torch.manual_seed(0)
    linear, conv = nn.Linear(16, 32), nn.Conv2d(3, 8, 3)
    x, img = torch.randn(4, 16), torch.randn(2, 3, 10, 10)
    q = k = v = torch.randn(1, 2, 8, 4, requires_grad=True)

    def step():
        loss = linear(x).relu().sum() + conv(img).tanh().sum()
        loss = loss + F.scaled_dot_product_attention(q, k, v).sum()
        loss.backward()
        return loss

    calls = record_gemms(step)
    names = [op.overloadpacket.__name__ for op, _, _ in calls]
    assert 'addmm' in names  # the linear's forward
    assert 'mm' in names  # its weight gradient
    assert 'convolution' in names and 'convolution_backward' in names
    assert any('scaled_dot_product' in n and n.endswith('_backward') for n in names)
    assert not any(n in ('relu', 'tanh', 'sum', 'add') for n in names)  # element-wise ops are not products
    # the layouts are kept: the linear's forward multiplies (4, 16) by (16, 32)
    (addmm, ) = [args for op, args, _ in calls if op.overloadpacket.__name__ == 'addmm']
    assert [tuple(a.shape) for a in addmm] == [(32, ), (4, 16), (16, 32)]

    times = replay_gemms(calls, repeat=2, warmup=1)
    assert set(times) == set(names) | {'total'}
    assert all(t > 0 for t in times.values())
    assert times['total'] == sum(t for op, t in times.items() if op != 'total')


def test_replay_computes_on_fresh_tensors_of_the_same_layout():
    a = torch.randn(64, 32).t()  # non-contiguous
    seen = []
    calls = record_gemms(lambda: a @ torch.randn(64, 8))
    (op, args, _), = calls
    real_op = op

    class Spy:
        overloadpacket = real_op.overloadpacket

        def __call__(self, *args, **kwargs):
            seen.append([(tuple(t.shape), t.stride()) for t in args])
            return real_op(*args, **kwargs)

    replay_gemms([(Spy(), args, {})], repeat=1, warmup=0)
    assert seen == [[((32, 64), (1, 32)), ((64, 8), (8, 1))]]


def test_records_every_linear_of_lit_inference():
    """In CPU inference LIT's linear layers may run as oneDNN's fused linear: the bound counts them too,
    one product per ``nn.Linear`` call."""
    from mmlit.models import LIT
    from mmlit.models.fast_path import set_fast_path
    model = set_fast_path(LIT(arch='ti').eval(), False)
    x = torch.randn(1, 3, 64, 64)
    linears = []
    hooks = [m.register_forward_pre_hook(lambda *_: linears.append(1)) for m in model.modules()
             if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(x)  # how many times the plain path calls its linear modules
    for hook in hooks:
        hook.remove()
    set_fast_path(model, True)
    with torch.no_grad():
        calls = record_gemms(lambda: model(x))
    names = [op.overloadpacket.__name__ for op, _, _ in calls]
    products = names.count('addmm') + names.count('mm') + names.count('_linear_pointwise')
    assert products >= len(linears) > 0
    times = replay_gemms(calls, repeat=1, warmup=0)
    assert times['total'] > 0


def test_describe_bound_flags_a_replay_slower_than_the_step():
    from mmlit_tools.gemm_replay import describe_bound
    gemms = dict(addmm=0.2, convolution=0.1, total=0.3)
    line = describe_bound(gemms, 0.4, 'inference')
    assert line == ('its own matrix products alone take 300.0 ms (addmm 200.0, convolution 100.0); the inference '
                    'runs at 75% of that bound')
    assert 'not a bound' in describe_bound(gemms, 0.25)  # 120%: the replay was slower than the step
    assert 'not a bound' not in describe_bound(gemms, 0.29)  # within 10%: replay noise
