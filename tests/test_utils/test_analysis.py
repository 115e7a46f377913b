"""mmlit_tools.analysis.load_backbone: the loader of the ONNX export and visualisation tools."""
import pytest
import torch

from mmlit.models import LIT
from mmlit.models.utils import mmlit_to_lit
from mmlit.utils import CheckpointError
from mmlit_tools.analysis import load_backbone


@pytest.fixture(scope='module')
def official_ti(tmp_path_factory):
    """A LIT-Ti ImageNet checkpoint in the official layout, and the backbone it came from."""
    torch.manual_seed(0)
    model = LIT(arch='ti', out_type='cls_token', out_indices=(3, ))
    model.init_weights()
    path = tmp_path_factory.mktemp('ckpt') / 'lit_ti_official.pth'
    torch.save(dict(model=mmlit_to_lit(model.state_dict(), 'ti', classifier=True)), path)
    return path, model


def test_loads_every_backbone_weight_of_an_official_checkpoint(official_ti):
    path, source = official_ti
    backbone = load_backbone('ti', str(path))
    assert not backbone.training
    loaded = backbone.state_dict()
    for name, value in source.state_dict().items():
        if name in loaded:
            torch.testing.assert_close(loaded[name], value, rtol=0, atol=0)
    assert 'cls_token' not in loaded  # the dense backbone has none: left out with a warning


def test_a_checkpoint_of_another_arch_is_named_as_such(official_ti):
    path, _ = official_ti
    with pytest.raises(CheckpointError, match="mmlit.LIT arch='ti'"):
        load_backbone('s', str(path))


def test_a_checkpoint_missing_backbone_weights_is_refused(official_ti, tmp_path):
    path, _ = official_ti
    state = torch.load(path, weights_only=True)
    partial = {k: v for k, v in state['model'].items() if not k.startswith('block4')}
    assert len(partial) < len(state['model'])
    torch.save(dict(model=partial), tmp_path / 'partial.pth')
    with pytest.raises(CheckpointError, match='missing'):
        load_backbone('ti', str(tmp_path / 'partial.pth'))
