"""How close a model step runs to the bound set by its own matrix products.

:func:`record_gemms` runs a step once under a ``TorchDispatchMode`` and keeps the shape, strides and
dtype of the arguments of every matrix product it dispatches (matmuls, convolutions and the fused
attention kernels, forward and backward: :data:`GEMM_OPS`). :func:`replay_gemms` runs those same calls
again on random tensors of the same layouts, alone, and times them: the step cannot be faster than that
unless its products change. ``benchmark.py`` prints the step's time as a fraction of this bound.
"""
import statistics
import time
from collections import defaultdict
from typing import Callable, Dict, List

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

# ATen ops that count as the step's matrix products (by overload packet name); ``_linear_pointwise`` is
# oneDNN's linear with its fused bias and GELU / residual add (mmlit's CPU inference, inductor on CPU).
GEMM_OPS = frozenset({
    'mm', 'addmm', 'bmm', 'baddbmm', 'addbmm', 'convolution', 'convolution_backward', 'mkldnn_convolution',
    'cudnn_convolution', '_linear_pointwise', '_scaled_dot_product_flash_attention_for_cpu',
    '_scaled_dot_product_flash_attention_for_cpu_backward', '_scaled_dot_product_flash_attention',
    '_scaled_dot_product_flash_attention_backward', '_scaled_dot_product_efficient_attention',
    '_scaled_dot_product_efficient_attention_backward', '_scaled_dot_product_cudnn_attention',
    '_scaled_dot_product_cudnn_attention_backward'
})


class _TensorSpec:
    """The layout of a tensor argument: shape, strides, dtype, device."""

    def __init__(self, t: torch.Tensor):
        self.shape, self.stride, self.dtype, self.device = t.shape, t.stride(), t.dtype, t.device

    def make(self) -> torch.Tensor:
        """A tensor of this layout (broadcast strides too): random floats, or zeros."""
        span = 1 + sum((n - 1) * st for n, st in zip(self.shape, self.stride)) if all(self.shape) else 0
        base = torch.empty(span, dtype=self.dtype, device=self.device)
        base = base.normal_() if base.is_floating_point() else base.zero_()
        return base.as_strided(self.shape, self.stride)


class _GemmRecorder(TorchDispatchMode):
    """Records the calls of :data:`GEMM_OPS` (op, argument layouts) while running everything as usual."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket.__name__ in GEMM_OPS:
            spec = lambda x: _TensorSpec(x) if isinstance(x, torch.Tensor) else x  # noqa: E731
            self.calls.append((func, tree_map(spec, args), tree_map(spec, kwargs)))
        return func(*args, **kwargs)


def record_gemms(step: Callable[[], object]) -> List[tuple]:
    """Run ``step`` once and return its matrix-product calls as ``(op, args, kwargs)``, tensors replaced by
    their layouts."""
    recorder = _GemmRecorder()
    with recorder:
        step()
    return recorder.calls


def replay_gemms(calls: List[tuple], repeat: int = 5, warmup: int = 2) -> Dict[str, float]:
    """Seconds that the recorded calls take on their own, per op name and in all (``'total'``): the median
    over ``repeat`` replays of the whole list, after ``warmup``. Each call gets fresh random arguments just
    before it runs (not timed), so memory holds one call's arguments at a time."""
    materialise = lambda x: x.make() if isinstance(x, _TensorSpec) else x  # noqa: E731
    cuda = any(isinstance(a, _TensorSpec) and a.device.type == 'cuda' for _, args, _ in calls for a in args)

    def run() -> Dict[str, float]:
        per_op = defaultdict(float)
        with torch.no_grad():
            for op, args, kwargs in calls:
                args, kwargs = tree_map(materialise, args), tree_map(materialise, kwargs)
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                op(*args, **kwargs)
                if cuda:
                    torch.cuda.synchronize()
                per_op[op.overloadpacket.__name__] += time.perf_counter() - start
        return per_op

    for _ in range(warmup):
        run()
    runs = [run() for _ in range(repeat)]
    totals = [sum(r.values()) for r in runs]
    median = runs[totals.index(statistics.median_low(totals))]
    return dict(median, total=sum(median.values()))


def describe_bound(gemms: Dict[str, float], step_seconds: float, what: str = 'step') -> str:
    """One line on the GEMM bound: the replayed products' total and per-op times (``gemms``, as
    :func:`replay_gemms` returns them) and the ``step_seconds`` it bounds, as a fraction of the step.

    A replay more than 10% slower than the whole step cannot be a bound: the products ran slower alone
    than inside the step (the process's state, e.g. page faults or a busy machine). The line then says so
    instead of letting the fraction pass for a measurement."""
    total = gemms['total']
    per_op = ', '.join(f'{op} {t * 1e3:.1f}' for op, t in sorted(gemms.items(), key=lambda kv: -kv[1])
                       if op != 'total')
    line = (f'its own matrix products alone take {total * 1e3:.1f} ms ({per_op}); the {what} runs at '
            f'{100 * total / step_seconds:.0f}% of that bound')
    if total > 1.1 * step_seconds:
        line += (' (the replay was slower than the whole step: not a bound in this process, where the '
                 'products ran slower alone; measure again)')
    return line
