"""Official LITv2 checkpoints -> mmlit, against the official code's outputs.

``tests/data/official_litv2_small.pth`` holds small LITv2 models (the LITv2 design at reduced widths and
depths) in every official layout (github.com/ziplab/LITv2): an ImageNet classifier (under ``model``), an
mmdet detection backbone with window 2 and with window 4 (the ``_ws_4`` configs; its 6x10 stage-3 grid is
padded to the window), and an mmseg segmentation backbone (under ``state_dict`` with ``backbone.``), each
with an input and the outputs the official code computed for it (its DCN extension replaced by
``mmcv.ops.deform_conv2d``).
"""
import os.path as osp

import pytest
import torch
from mmengine.registry import DefaultScope

import mmlit  # noqa: F401
from mmlit.models import LITv2
from mmlit.models.utils import detect_layout, lit_to_mmlit, mmlit_to_lit

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
OFFICIAL = torch.load(osp.join(ROOT, 'tests', 'data', 'official_litv2_small.pth'))
ARCH = dict(embed_dims=[8, 16, 32, 64], depths=[1, 2, 2, 1], num_heads=[1, 2, 4, 4], mlp_ratios=[4] * 4)
DENSE = ['v2_det', 'v2_det_ws4', 'v2_seg']


def _strip(state_dict, prefix='backbone.'):
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _backbone(case):
    # the official detection backbones normalise stages 2-4, the segmentation one all four
    return LITv2(arch=ARCH, local_ws=OFFICIAL[case]['local_ws'], drop_path_rate=0.,
                 out_norm_indices=(0, 1, 2, 3) if case == 'v2_seg' else None)


def test_classifier_loads_strictly_and_reproduces_official_logits():
    pytest.importorskip('mmpretrain')
    from mmpretrain.models import ImageClassifier
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ImageClassifier(
            backbone=dict(type='mmlit.LITv2', arch=ARCH, out_type='avg_featmap', out_indices=(3, ),
                          drop_path_rate=0.),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64))
    checkpoint = OFFICIAL['v2_cls']['checkpoint']
    assert detect_layout(k for k in checkpoint['model'] if not k.startswith('head.')) == 'litv2'
    model.load_state_dict(lit_to_mmlit(checkpoint), strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(OFFICIAL['v2_cls']['input'], mode='tensor')
    torch.testing.assert_close(logits, OFFICIAL['v2_cls']['outputs'][0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('case', DENSE)
def test_dense_backbone_loads_strictly_and_reproduces_official_features(case):
    model = _backbone(case)
    model.load_state_dict(_strip(lit_to_mmlit(OFFICIAL[case]['checkpoint'])), strict=True)
    model.eval()
    with torch.no_grad():
        outs = model(OFFICIAL[case]['input'])
    assert len(outs) == len(OFFICIAL[case]['outputs'])
    for ours, theirs in zip(outs, OFFICIAL[case]['outputs']):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_convert_weights_loads_an_official_checkpoint(tmp_path):
    """``init_cfg=dict(type='Pretrained', ...)`` with ``convert_weights=True``, as the configs load weights."""
    path = tmp_path / 'litv2_det.pth'
    torch.save(OFFICIAL['v2_det']['checkpoint'], path)
    model = LITv2(arch=ARCH, drop_path_rate=0., convert_weights=True,
                  init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        outs = model(OFFICIAL['v2_det']['input'])
    for ours, theirs in zip(outs, OFFICIAL['v2_det']['outputs']):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('case', ['v2_cls'] + DENSE)
def test_round_trip(case):
    official = OFFICIAL[case]['checkpoint']
    state = next(iter(official.values()))
    if case == 'v2_cls':
        backbone = {k: v for k, v in state.items() if not k.startswith('head.')}
    else:
        backbone = _strip(state)
    converted = _strip(lit_to_mmlit(official))
    back = mmlit_to_lit(converted, 'litv2', classifier=case == 'v2_cls')
    assert set(back) == set(backbone)
    for key, value in backbone.items():
        assert back[key] is value
