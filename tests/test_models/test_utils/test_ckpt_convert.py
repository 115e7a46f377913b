"""Official LIT checkpoints -> mmlit.

``tests/data/official_lit_small.pth`` holds small models (LIT-Ti and LIT-S designs, reduced widths and
depths) in every official layout: ImageNet classifiers (under ``model``), mmdet detection backbones and
mmseg segmentation backbones (under ``state_dict`` with ``backbone.``), each with an input and the
outputs the official code computed for it (its DCN extension replaced by ``mmcv.ops.deform_conv2d``).
"""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.registry import DefaultScope

import mmlit  # noqa: F401
from mmlit.models import LIT
from mmlit.models.utils import lit_to_mmlit, mmlit_to_lit

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
FIXTURE = osp.join(ROOT, 'tests', 'data', 'official_lit_small.pth')
OFFICIAL = torch.load(FIXTURE)
LAYOUT = dict(ti_cls='ti', ti_det='ti', s_cls='smb', s_det='smb', s_seg='smb')


def _backbone(case, **kwargs):
    entry = OFFICIAL[case]
    kwargs.setdefault('out_norm_indices', (0, 1, 2, 3) if case == 's_seg' else None)
    return LIT(arch=entry['arch'], pretrain_img_size=entry['img_size'], drop_path_rate=0., **kwargs)


def _classifier(case):
    mmpretrain = pytest.importorskip('mmpretrain')  # noqa: F841
    from mmpretrain.models import ImageClassifier
    arch = OFFICIAL[case]['arch']
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return ImageClassifier(
            backbone=dict(type='mmlit.LIT', arch=arch, pretrain_img_size=OFFICIAL[case]['img_size'],
                          out_type='cls_token' if case.startswith('ti') else 'avg_featmap', out_indices=(3, ),
                          drop_path_rate=0.),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=arch['embed_dims'][-1]))


def _strip(state_dict, prefix='backbone.'):
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


@pytest.mark.parametrize('case', ['ti_cls', 's_cls'])
def test_classifier_loads_strictly_and_reproduces_official_logits(case):
    model = _classifier(case)
    model.load_state_dict(lit_to_mmlit(OFFICIAL[case]['checkpoint']), strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(OFFICIAL[case]['input'], mode='tensor')
    torch.testing.assert_close(logits, OFFICIAL[case]['outputs'][0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('case', ['ti_det', 's_det', 's_seg'])
def test_dense_backbone_loads_strictly_and_reproduces_official_features(case):
    converted = lit_to_mmlit(OFFICIAL[case]['checkpoint'])
    model = _backbone(case)
    model.load_state_dict(_strip(converted), strict=True)
    model.eval()
    with torch.no_grad():
        outs = model(OFFICIAL[case]['input'])
    assert len(outs) == len(OFFICIAL[case]['outputs'])
    for ours, theirs in zip(outs, OFFICIAL[case]['outputs']):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('case', sorted(LAYOUT))
def test_round_trip(case):
    official = OFFICIAL[case]['checkpoint']
    state = next(iter(official.values()))
    if case.endswith('_cls'):
        backbone = {k: v for k, v in state.items() if not k.startswith('head.')}
    else:
        backbone = _strip(state)
    backbone = {k: v for k, v in backbone.items() if not k.endswith('relative_position_index')}
    converted = _strip(lit_to_mmlit(official))
    back = mmlit_to_lit(converted, LAYOUT[case], classifier=case.endswith('_cls'))
    assert set(back) == set(backbone)
    for key, value in backbone.items():
        assert back[key] is value
    # mmlit layout passes through unchanged
    again = lit_to_mmlit({f'backbone.{k}': v for k, v in converted.items()})
    assert list(again) == [f'backbone.{k}' for k in converted]


@pytest.mark.parametrize('framing', ['bare', 'model', 'state_dict', 'prefixed'])
def test_checkpoint_framings(framing):
    state = OFFICIAL['ti_det']['checkpoint']['state_dict']
    bare = _strip(state)
    checkpoint = dict(bare=bare, model=dict(model=bare), state_dict=dict(state_dict=bare),
                      prefixed=dict(state_dict=state, meta={}))[framing]
    converted = lit_to_mmlit(checkpoint)
    _backbone('ti_det').load_state_dict(_strip(converted), strict=True)


def test_detection_keys_other_than_backbone_are_kept():
    state = dict(OFFICIAL['s_det']['checkpoint']['state_dict'])
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    converted = lit_to_mmlit(dict(state_dict=state))
    assert converted['neck.lateral_convs.0.conv.weight'] is state['neck.lateral_convs.0.conv.weight']


def test_tables_and_embeddings_are_resized_on_load():
    """Detection LIT-S tables are sized for 800px (99x99 offsets); a 224px model resizes them."""
    converted = _strip(lit_to_mmlit(OFFICIAL['s_det']['checkpoint']))
    assert converted['stages.2.blocks.0.attn.relative_position_bias_table'].shape == (99 * 99, 2)
    model = LIT(arch=OFFICIAL['s_det']['arch'], pretrain_img_size=224)
    model.load_state_dict(converted, strict=True)
    assert model.stages[2].blocks[0].attn.relative_position_bias_table.shape == (27 * 27, 2)
    ti = _strip(lit_to_mmlit(OFFICIAL['ti_cls']['checkpoint']))
    model = LIT(arch=OFFICIAL['ti_cls']['arch'], pretrain_img_size=128, out_type='cls_token', out_indices=(3, ))
    model.load_state_dict(ti, strict=True)
    assert model.stages[3].pos_embed.pos_embed.shape == (1, 1 + 4 * 4, 64)
    assert model.stages[0].pos_embed.pos_embed.shape == (1, 32 * 32, 16)


def test_convert_weights_on_the_fly(tmp_path):
    path = str(tmp_path / 'official_det.pth')
    torch.save(OFFICIAL['s_det']['checkpoint'], path)
    model = _backbone('s_det', convert_weights=True,
                      init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        outs = model(OFFICIAL['s_det']['input'])
    for ours, theirs in zip(outs, OFFICIAL['s_det']['outputs']):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_converter_tool(tmp_path):
    src, dst = str(tmp_path / 'lit_ti.pth'), str(tmp_path / 'lit_ti_mmlit.pth')
    torch.save(OFFICIAL['ti_cls']['checkpoint'], src)
    tool = osp.join(ROOT, 'tools', 'model_converters', 'lit2mmlit.py')
    result = subprocess.run([sys.executable, tool, src, dst], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert 'ti layout' in result.stdout
    model = _classifier('ti_cls')
    model.load_state_dict(torch.load(dst)['state_dict'], strict=True)


def test_unknown_checkpoints_are_named():
    with pytest.raises(ValueError, match='not a LIT checkpoint'):
        lit_to_mmlit({'conv1.weight': torch.zeros(1)})
    with pytest.raises(KeyError, match="Unrecognised key 'extra_head.weight'"):
        lit_to_mmlit({'patch_embed1.proj.weight': torch.zeros(1), 'extra_head.weight': torch.zeros(1)})


def test_pretrained_init_cfg_with_prefix(tmp_path):
    """A converted checkpoint loads through mmengine's own Pretrained init with ``prefix``."""
    path = str(tmp_path / 'converted.pth')
    torch.save(dict(state_dict=lit_to_mmlit(OFFICIAL['ti_det']['checkpoint'])), path)
    model = _backbone('ti_det', init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        outs = model(OFFICIAL['ti_det']['input'])
    for ours, theirs in zip(outs, OFFICIAL['ti_det']['outputs']):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
