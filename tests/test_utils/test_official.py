"""Building the authors' model code beside mmlit's (mmlit_tools.official).

No official code is committed. The unit tests import small files that the tests write themselves, in the
layout of the official repositories; with ``MMLIT_OFFICIAL_LIT`` / ``MMLIT_OFFICIAL_LITV2`` pointing to
checkouts of github.com/zhuang-group/LIT and github.com/ziplab/LITv2 (and timm installed), the last test
also checks the real code's outputs against mmlit's.
"""
import os
import os.path as osp
import textwrap

import pytest
import torch

from mmlit.ops import deform_conv2d_k2s2
from mmlit_tools.official import (
    OFFICIAL_BACKBONES,
    DeformConv2dPack,
    DeformConv2dPackWithOffset,
    build_official,
    family_of,
    find_checkout,
    load_official_file,
)


def write(path, text):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(textwrap.dedent(text))
    return str(path)


def test_dcn_standin_is_the_deformable_conv():
    """The stand-in for the official CUDA DCN computes the deformable convolution of mmlit's DTM op (mmcv's
    formula), with its offsets from ``conv_offset``; zhuang-group/LIT's variant also returns the offsets."""
    torch.manual_seed(0)
    dcn = DeformConv2dPack(8, 16, kernel_size=2, stride=2, padding=0)
    assert sorted(n for n, _ in dcn.named_parameters()) == [
        'bias', 'conv_offset.bias', 'conv_offset.weight', 'weight']  # the official names
    assert not dcn.conv_offset.weight.any()  # offsets start at zero
    torch.nn.init.normal_(dcn.conv_offset.weight, std=0.3)
    torch.nn.init.normal_(dcn.bias)
    x = torch.randn(2, 8, 10, 12)
    expected = deform_conv2d_k2s2(x, dcn.conv_offset(x), dcn.weight, dcn.bias)
    torch.testing.assert_close(dcn(x), expected, rtol=1e-5, atol=1e-5)

    with_offset = DeformConv2dPackWithOffset(8, 16, kernel_size=(2, 2), stride=2, padding=0)
    with_offset.load_state_dict(dcn.state_dict())
    out, offset = with_offset(x, return_offset=False)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert offset.shape == (2, 8, 5, 6)


def test_load_official_file_gives_standins_only_to_that_file(tmp_path):
    import mmdet.registry
    path = write(tmp_path / 'model.py', '''
        import torch.nn as nn
        from mm_modules.DCN.modules.deform_conv2d import DeformConv2dPack
        from mmdet.registry import MODELS
        from mmdet.utils import get_root_logger
        from mmcv_custom import load_checkpoint

        @MODELS.register_module()
        class LITv2(nn.Module):
            def __init__(self):
                super().__init__()
                self.dconv = DeformConv2dPack(4, 8, kernel_size=2, stride=2, padding=0)
        LOGGER = get_root_logger()
        LOAD = load_checkpoint
        ''')
    module = load_official_file(path)
    assert isinstance(module.LITv2().dconv, DeformConv2dPack)
    assert module.__file__ == path and module.LOGGER is not None
    with pytest.raises(RuntimeError, match='weights_from'):
        module.LOAD(None, 'x.pth')
    # the official class registered nowhere: mmdet's registry is untouched
    assert 'LITv2' not in mmdet.registry.MODELS.module_dict
    # elsewhere, the real modules
    from mmdet import utils
    assert not hasattr(utils, 'get_root_logger')

    module = load_official_file(path, dcn=DeformConv2dPackWithOffset)
    assert isinstance(module.LITv2().dconv, DeformConv2dPackWithOffset)


def test_load_official_file_names_what_is_missing(tmp_path):
    path = write(tmp_path / 'needs_timm.py', 'from timm_that_is_not_installed.layers import DropPath\n')
    with pytest.raises(ModuleNotFoundError, match="needs 'timm_that_is_not_installed'"):
        load_official_file(path)
    path = write(tmp_path / 'relative.py', 'from ..unknown import thing\n')
    with pytest.raises(ImportError, match="'..unknown'"):
        load_official_file(path)


def test_find_checkout_and_family(tmp_path):
    assert [family_of(t) for t in ('ti', 'tiny', 's', 'B', 'litv2-m', 'LITv2_b')] == [
        'ti', 'ti', 'smb', 'smb', 'litv2', 'litv2']
    lit, litv2 = tmp_path / 'LIT', tmp_path / 'LITv2'
    write(lit / OFFICIAL_BACKBONES['ti'][0], '')
    write(lit / OFFICIAL_BACKBONES['smb'][0], '')
    write(litv2 / OFFICIAL_BACKBONES['litv2'][0], '')
    checkouts = [str(lit), str(litv2)]
    assert find_checkout('ti', checkouts) == str(lit)
    assert find_checkout('s', checkouts) == str(lit)
    assert find_checkout('litv2-s', checkouts) == str(litv2)
    assert find_checkout('litv2-s', [str(lit)]) is None
    with pytest.raises(FileNotFoundError, match='ziplab/LITv2'):
        build_official(str(lit), 'litv2-s')


OFFICIAL = dict(ti=os.environ.get('MMLIT_OFFICIAL_LIT'), s=os.environ.get('MMLIT_OFFICIAL_LIT'),
                **{'litv2-s': os.environ.get('MMLIT_OFFICIAL_LITV2')})


@pytest.mark.slow
@pytest.mark.parametrize('arch', list(OFFICIAL))
def test_official_code_computes_mmlit_function(arch):
    """With a checkout of the official code: its backbone, given mmlit's weights, gives mmlit's outputs."""
    if not OFFICIAL[arch]:
        pytest.skip('set MMLIT_OFFICIAL_LIT / MMLIT_OFFICIAL_LITV2 to checkouts of the official code')
    pytest.importorskip('timm')
    from mmlit_tools.analysis import build_target
    torch.manual_seed(0)
    ours = build_target(arch).eval()
    official = build_official(OFFICIAL[arch], arch, weights_from=ours)
    x = torch.randn(1, 3, 128, 192)
    with torch.no_grad():
        for a, b in zip(ours(x), official(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)



TRAINING = dict(ti=(128, 192), s=(128, 192), m=(96, 160), b=(96, 160), **{'litv2-s': (128, 192)})


@pytest.mark.slow
@pytest.mark.parametrize('arch', list(TRAINING))
def test_official_training_step_equals_mmlit_in_float64(arch, monkeypatch):
    """With a checkout of the official code: a training step in float64 (batch statistics, no drop path)
    gives the official outputs and the official gradient of every parameter, to 1e-11 of the larger of 1
    and the gradient's size. The global attention takes the training function (every bias counts as
    large), and the deformable token merging starts from its zero offsets, where the offset gradient is the
    official DCN's forward difference."""
    checkout = os.environ.get('MMLIT_OFFICIAL_LITV2' if arch.startswith('litv2') else 'MMLIT_OFFICIAL_LIT')
    if not checkout:
        pytest.skip('set MMLIT_OFFICIAL_LIT / MMLIT_OFFICIAL_LITV2 to checkouts of the official code')
    pytest.importorskip('timm')
    from mmlit.models.fast_path import attention as fast_attention
    from mmlit.models.fast_path import rel_pos_attention as rpa
    from mmlit.models.utils import mmlit_to_lit
    from mmlit_tools.analysis import build_target
    monkeypatch.setattr(fast_attention, 'WHOLE_BIAS_BYTES', 0)
    calls = []
    real = rpa._RelPosAttention.apply
    monkeypatch.setattr(rpa._RelPosAttention, 'apply', lambda *a: calls.append(a[4]) or real(*a))
    torch.manual_seed(0)
    ours = build_target(arch, drop_path_rate=0.)
    official = build_official(checkout, arch, weights_from=ours).double()
    official.train()
    if arch == 'ti':
        official.reset_drop_path(0.)  # the official LIT-Ti fixes a drop path rate of 0.1
    ours = ours.double().train()
    x = torch.randn(2, 3, *TRAINING[arch], dtype=torch.float64)
    outs, refs = ours(x), official(x)
    weights = [torch.randn_like(out) for out in outs]
    for out, ref in zip(outs, refs, strict=True):
        torch.testing.assert_close(out, ref, rtol=1e-11, atol=1e-11)
    sum((out * w).sum() for out, w in zip(outs, weights)).backward()
    sum((ref * w).sum() for ref, w in zip(refs, weights)).backward()
    assert calls or arch.startswith('litv2') or arch == 'ti', 'the training attention function did not run'
    layout = 'ti' if arch == 'ti' else 'litv2' if arch.startswith('litv2') else 'smb'
    grads = mmlit_to_lit({k: p.grad for k, p in ours.named_parameters() if p.grad is not None}, layout=layout)
    params = dict(official.named_parameters())
    assert set(grads) >= {k for k, p in params.items() if p.grad is not None}
    worst = []
    for key, grad in grads.items():
        ref = params[key].grad
        err = (grad - ref).abs().max().item() / max(1., ref.abs().max().item())
        if err > 1e-11:
            worst.append((key, err))
    assert not worst, f'gradients differ from the official ones (name, relative error): {worst[:6]}'
