"""The blocks' fast path (``fast_path/blocks.py``) gives the plain results and bounds what it holds at once in
inference: LIT's MLP over chunks of tokens, LITv2's (with the depthwise conv) with at most two hidden-sized
tensors alive."""
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from mmlit.models.fast_path import linear as linear_module
from mmlit.models.fast_path import set_fast_path
from mmlit.models.fast_path.blocks import CHUNK_TOKENS
from mmlit.models.layers import MLPBlock


class LiveBytes(TorchDispatchMode):
    """The peak of the bytes held by tensors that ops allocate inside the mode (views counted once, by
    storage), and the ops' names."""

    def __init__(self):
        super().__init__()
        self.refs, self.nbytes, self.now, self.peak, self.ops = {}, {}, 0, 0, set()

    def _release(self, key):
        self.refs[key] -= 1
        if not self.refs[key]:
            self.now -= self.nbytes.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.add(str(func.overloadpacket))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                key = t.untyped_storage().data_ptr()
                if key not in self.refs:
                    self.refs[key], self.nbytes[key] = 0, t.untyped_storage().nbytes()
                    self.now += self.nbytes[key]
                    self.peak = max(self.peak, self.now)
                self.refs[key] += 1
                weakref.finalize(t, self._release, key)
        return out


def _block(dw_conv: bool, dims: int = 32) -> MLPBlock:
    torch.manual_seed(0)
    block = MLPBlock(dims, mlp_ratio=4, dw_conv=dw_conv)
    block.init_weights()
    return set_fast_path(block, True).eval()


@pytest.mark.parametrize('dw_conv', [False, True], ids=['lit', 'litv2'])
def test_inference_mlp_holds_little_at_once(dw_conv):
    """LIT's MLP (tokens independent) holds less than its whole hidden activation at any time; LITv2's
    (a depthwise conv over the whole map) at most two hidden-sized tensors: the linear's output is freed
    before the GELU allocates. Both give the plain block's result."""
    block = _block(dw_conv)
    hw = (128, 64)  # four chunks of CHUNK_TOKENS
    assert hw[0] * hw[1] == 4 * CHUNK_TOKENS
    x = torch.randn(1, hw[0] * hw[1], 32)
    hidden_bytes = x.numel() * 4 * x.element_size()
    with torch.no_grad():
        with LiveBytes() as live:
            fast = block(x, hw)
        set_fast_path(block, False)
        plain = block(x, hw)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    # where oneDNN's linear runs, the bound is the fused MLP's (the path the LITv2 bug was in)
    assert ('mkldnn._linear_pointwise' in live.ops) == linear_module._HAS_ONEDNN_LINEAR, sorted(live.ops)
    if dw_conv:
        assert live.peak <= 2.5 * hidden_bytes, (live.peak / hidden_bytes, sorted(live.ops))
    else:
        # a chunk's hidden activation (a quarter), the chunks' outputs and their concatenation: 0.75 of it
        # (1.25 unchunked, with the normalised tokens and the output)
        assert live.peak < hidden_bytes, (live.peak / hidden_bytes, sorted(live.ops))
