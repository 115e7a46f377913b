"""The MLP of the LIT family (mmlit.models.layers.Mlp) and the loading of checkpoints with the keys of
mmcv's FFN, which mmlit 0.1.0 used (version 1 of the module)."""
import collections

import pytest
import torch
from mmengine.runner.checkpoint import load_checkpoint

from mmlit.models import LIT, LITv2
from mmlit.models.fast_path import set_fast_path
from mmlit.models.layers import Mlp, MLPBlock


def _v1_state_dict(model: torch.nn.Module, with_metadata: bool) -> collections.OrderedDict:
    """``model``'s state dict as mmlit 0.1.0 saved it: an FFN's ``layers.0.0`` / ``layers.1`` for ``fc1`` /
    ``fc2``, and (``with_metadata``) version 1 for those modules."""
    state_dict = model.state_dict()
    metadata = state_dict._metadata
    old = collections.OrderedDict()
    for key, value in state_dict.items():
        old[key.replace('ffn.fc1.', 'ffn.layers.0.0.').replace('ffn.fc2.', 'ffn.layers.1.')] = value
    if with_metadata:
        old._metadata = collections.OrderedDict(
            (k, dict(v, version=1) if k.endswith('ffn') else v) for k, v in metadata.items())
    return old


def test_forward_is_the_formula():
    torch.manual_seed(0)
    mlp = Mlp(8, 32, dw_conv=False)
    x = torch.randn(2, 6, 8)
    torch.testing.assert_close(mlp(x, (2, 3)), mlp.fc2(torch.nn.functional.gelu(mlp.fc1(x))))
    conv = Mlp(8, 32, dw_conv=True)
    conv.init_weights()
    hidden = conv.fc1(x).view(2, 2, 3, 32).permute(0, 3, 1, 2)
    hidden = conv.dwconv(hidden).flatten(2).transpose(1, 2)
    torch.testing.assert_close(conv(x, (2, 3)), conv.fc2(torch.nn.functional.gelu(hidden)))
    assert conv.dwconv.bias.abs().sum() == 0


@pytest.mark.parametrize('with_metadata', [True, False])
def test_loads_version_1_keys_strictly(with_metadata):
    torch.manual_seed(0)
    model = LIT(arch='s').eval()
    model.init_weights()
    old = _v1_state_dict(model, with_metadata)
    assert any('ffn.layers.0.0.weight' in k for k in old) and not any('ffn.fc1' in k for k in old)
    fresh = LIT(arch='s').eval()
    fresh.load_state_dict(old, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(fresh(x), model(x)):
            assert torch.equal(a, b)


def test_version_2_keys_are_not_renamed():
    """A version-2 state dict that happens to hold a key under ``layers.`` is left for load_state_dict to
    report, not renamed."""
    mlp = Mlp(4, 8)
    state_dict = mlp.state_dict()
    state_dict['layers.1.weight'] = torch.zeros(4, 8)
    with pytest.raises(RuntimeError, match='Unexpected key'):
        mlp.load_state_dict(state_dict, strict=True)


def test_mmengine_checkpoint_of_version_1_loads(tmp_path):
    """An mmlit 0.1.0 checkpoint file through MMEngine's ``load_checkpoint`` (mmlit's safe loading), strictly."""
    torch.manual_seed(1)
    model = LITv2(arch='s').eval()
    model.init_weights()
    path = tmp_path / 'old.pth'
    torch.save({'state_dict': _v1_state_dict(model, with_metadata=True), 'meta': {}}, path)
    fresh = LITv2(arch='s').eval()
    load_checkpoint(fresh, str(path), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(fresh(x), model(x)):
            assert torch.equal(a, b)


@pytest.mark.parametrize('fast', [True, False])
def test_block_hooks_on_the_mlp_fire(fast):
    """The blocks call their MLP as a module, so forward hooks on ``*.ffn`` run, fast path or not."""
    block = set_fast_path(MLPBlock(8, mlp_ratio=2), fast).eval()
    seen = []
    block.ffn.register_forward_hook(lambda *_: seen.append(1))
    with torch.no_grad():
        block(torch.randn(1, 4, 8), (2, 2))
    assert seen == [1]
