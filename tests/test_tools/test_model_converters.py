"""tools/model_converters/lit2mmlit.py on whole official task checkpoints.

The official detection (mmdet 2.11) and segmentation (mmseg 0.13) checkpoints are synthesised here:
every config's model with random weights, its backbone written back into the official layout. The
official backbone key names and shapes, recorded from the official code at full size, are in
``tests/data/official_task_backbone_keys.json``; neck and head shapes follow the official configs.
"""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

import mmlit  # noqa: F401
from mmlit.models.utils import mmlit_to_lit
from mmlit_tools.analysis import build_target, dummy_batch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'model_converters', 'lit2mmlit.py')
with open(osp.join(ROOT, 'tests', 'data', 'official_task_backbone_keys.json')) as f:
    OFFICIAL_BACKBONE_KEYS = json.load(f)


def _det_heads(c1, c_last, mask_rcnn):
    if not mask_rcnn:  # RetinaNet: FPN from level 1, extra convs on the input, 9 anchors x 80 classes
        return {'neck.lateral_convs.0.conv.weight': (256, c1, 1, 1),
                'neck.fpn_convs.3.conv.weight': (256, c_last, 3, 3),
                'bbox_head.retina_cls.weight': (720, 256, 3, 3), 'bbox_head.retina_reg.weight': (36, 256, 3, 3)}
    return {'neck.lateral_convs.0.conv.weight': (256, c1, 1, 1), 'rpn_head.rpn_cls.weight': (3, 256, 1, 1),
            'roi_head.bbox_head.shared_fcs.0.weight': (1024, 256 * 7 * 7),
            'roi_head.bbox_head.fc_cls.weight': (81, 1024), 'roi_head.bbox_head.fc_reg.weight': (320, 1024),
            'roi_head.mask_head.conv_logits.weight': (80, 256, 1, 1)}


def _seg_heads(c0):
    return {'neck.lateral_convs.0.conv.weight': (256, c0, 1, 1),
            'decode_head.scale_heads.3.0.conv.weight': (128, 256, 3, 3),
            'decode_head.conv_seg.weight': (150, 128, 1, 1)}


# official checkpoint -> (our config, official backbone, official neck/head shapes)
CASES = {
    'retina_lit_ti.pth': ('retinanet_lit_ti_fpn_1x_coco.py', 'det_ti', _det_heads(128, 512, False)),
    'retina_lit_s.pth': ('retinanet_lit_s_fpn_1x_coco.py', 'det_s', _det_heads(192, 768, False)),
    'mask_rcnn_lit_ti.pth': ('mask_rcnn_lit_ti_fpn_1x_coco.py', 'det_ti', _det_heads(64, 512, True)),
    'mask_rcnn_lit_s.pth': ('mask_rcnn_lit_s_fpn_1x_coco.py', 'det_s', _det_heads(96, 768, True)),
    'sem_fpn_lit_ti.pth': ('fpn_lit_ti_512x512_80k_ade20k.py', 'seg_ti', _seg_heads(64)),
    'sem_fpn_lit_s.pth': ('fpn_lit_s_512x512_80k_ade20k.py', 'seg_s', _seg_heads(96)),
}


def _randomise(model):
    """Random values everywhere a wrong mapping would show: BN statistics, offsets, tables, embeddings."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 0.2 + (0.5 if 'running_var' in name else 0))
    return model.eval()


def _official_checkpoint(model, backbone_layout):
    state = model.state_dict()
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    layout = 'ti' if backbone_layout.endswith('ti') else 'smb'
    official = {f'backbone.{k}': v for k, v in mmlit_to_lit(backbone, layout).items()}
    official.update((k, v) for k, v in state.items() if not k.startswith('backbone.'))
    return official


def _run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CASES))
def test_official_task_checkpoint_converts_and_loads_strictly(name, tmp_path):
    config, backbone_layout, head_shapes = CASES[name]
    config = osp.join(ROOT, 'configs', config)
    model = _randomise(build_target(config))
    official = _official_checkpoint(model, backbone_layout)

    # the synthetic checkpoint has exactly the official layout
    official_backbone = {k[len('backbone.'):]: tuple(v.shape) for k, v in official.items()
                         if k.startswith('backbone.')}
    expected = {k: tuple(v) for k, v in OFFICIAL_BACKBONE_KEYS[backbone_layout].items()
                if not k.endswith('relative_position_index')}
    assert official_backbone == expected
    for key, shape in head_shapes.items():
        assert tuple(official[key].shape) == shape, key

    seg = backbone_layout.startswith('seg')
    classes = [f'class_{i}' for i in range(150 if seg else 80)]
    meta = dict(CLASSES=classes, config='(mmcv 1.x config text)', epoch=12, iter=87960,
                **(dict(mmseg_version='0.13.0', PALETTE=[[i, i, i] for i in range(150)]) if seg else
                   dict(mmdet_version='2.11.0')))
    src, dst = tmp_path / name, tmp_path / f'{name[:-4]}_mmlit.pth'
    torch.save(dict(meta=meta, state_dict=official, optimizer=dict(state={}, param_groups=[])), src)
    result = _run_tool(src, dst, '--config', config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Loads strictly' in result.stdout

    converted = torch.load(dst)
    assert set(converted) == {'state_dict', 'meta'}
    dataset_meta = converted['meta']['dataset_meta']
    assert list(dataset_meta['classes']) == classes
    assert ('palette' in dataset_meta) == seg
    assert converted['meta']['source_version'] == ('mmseg 0.13.0' if seg else 'mmdet 2.11.0')

    loaded = build_target(config)
    loaded.load_state_dict(converted['state_dict'], strict=True)
    loaded.eval()
    inputs, samples = dummy_batch(model, 1, (64, 96))
    with torch.no_grad():
        ours, theirs = loaded.extract_feat(inputs), model.extract_feat(inputs)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        for a, b in zip(loaded(inputs, samples, mode='tensor'), model(inputs, samples, mode='tensor')):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.slow
def test_config_check_names_what_differs(tmp_path):
    """An ImageNet checkpoint is not a detector: the tool says so instead of writing a half model."""
    classifier = build_target(osp.join(ROOT, 'configs', 'lit_ti_8xb128_in1k.py'))
    backbone = {k[len('backbone.'):]: v for k, v in classifier.state_dict().items() if k.startswith('backbone.')}
    official = dict(mmlit_to_lit(backbone, 'ti', classifier=True))
    official.update({'head.weight': torch.zeros(1000, 512), 'head.bias': torch.zeros(1000)})
    src, dst = tmp_path / 'lit_ti.pth', tmp_path / 'out.pth'
    torch.save(dict(model=official), src)
    result = _run_tool(src, dst, '--config', osp.join(ROOT, 'configs', 'mask_rcnn_lit_ti_fpn_1x_coco.py'))
    assert result.returncode != 0
    assert 'does not load strictly' in result.stderr and 'missing keys' in result.stderr
    assert "prefix='backbone.'" in result.stderr
    assert not dst.exists()
    result = _run_tool(src, dst, '--config', osp.join(ROOT, 'configs', 'lit_ti_8xb128_in1k.py'))
    assert result.returncode == 0, result.stderr
    assert dst.exists()
