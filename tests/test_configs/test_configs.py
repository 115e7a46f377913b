"""Every config in configs/ loads, builds its model (no data, no weights) and runs a dummy batch."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))


def test_there_are_configs_for_every_task():
    names = {osp.basename(c) for c in CONFIGS}
    for expected in ('mask_rcnn_lit_ti_fpn_1x_coco.py', 'mask_rcnn_lit_s_fpn_1x_coco.py',
                     'retinanet_lit_ti_fpn_1x_coco.py', 'retinanet_lit_s_fpn_1x_coco.py',
                     'fpn_lit_ti_512x512_80k_ade20k.py', 'fpn_lit_s_512x512_80k_ade20k.py',
                     'lit_ti_8xb128_in1k.py', 'lit_s_8xb128_in1k.py', 'lit_m_8xb128_in1k.py',
                     'lit_b_8xb128_in1k.py', 'mask_rcnn_litv2_s_fpn_toy_shapes.py', *PAPER_PARAMS):
        assert expected in names


# whole models' parameters (millions) in the LITv2 paper / model zoo (github.com/ziplab/LITv2); the
# window size does not change them. Detection heads: COCO's 80 classes; Semantic FPN: ADE20K's 150.
PAPER_PARAMS = {
    **{f'retinanet_litv2_{a}_fpn_1x_coco{ws}.py': n for a, n in zip('smb', (38, 59, 97)) for ws in ('', '_ws_4')},
    **{f'mask_rcnn_litv2_{a}_fpn_1x_coco{ws}.py': n for a, n in zip('smb', (47, 68, 106)) for ws in ('', '_ws_4')},
    **{f'fpn_litv2_{a}_512x512_80k_ade20k.py': n for a, n in zip('smb', (31, 52, 90))},
    **{f'litv2_{a}_8xb128_in1k.py': n for a, n in zip('smb', (28, 49, 87))},
}


BEYOND_PAPER = osp.join('configs', 'beyond_paper')


def _dummy_forward(cfg, model, full=False):
    """The losses of a dummy batch; with ``full``, also their backward (every trainable parameter the
    losses reach gets a finite gradient) and a prediction in eval mode."""
    scope = cfg.default_scope
    if scope == 'mmdet':
        from mmdet.testing import demo_mm_inputs
        panoptic = 'panoptic_head' in cfg.model
        with_mask = 'mask_head' in str(cfg.model.get('roi_head', {})) or panoptic
        # DETR-like heads pick their queries among the encoder's tokens: enough of them for DINO's 900
        shapes = [[3, 256, 320], [3, 224, 288]] if 'num_queries' in cfg.model else [[3, 96, 128], [3, 64, 96]]
        packed = demo_mm_inputs(2, shapes, num_items=[2, 1], with_mask=with_mask,
                                with_semantic='panoptic_fusion_head' in cfg.model and panoptic and
                                cfg.model.panoptic_head.get('num_stuff_classes', 0) > 0, num_classes=3)
        data = model.data_preprocessor(packed, True)
        losses = model(**data, mode='loss')
    elif scope == 'mmseg' and full:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        meta = dict(img_shape=(64, 96), ori_shape=(64, 96), pad_shape=(64, 96))
        samples = [SegDataSample(metainfo=meta, gt_sem_seg=PixelData(data=torch.randint(150, (1, 64, 96))))
                   for _ in range(2)]
        data = dict(inputs=torch.randn(2, 3, 64, 96), data_samples=samples)
        losses = model(**data, mode='loss')
    else:
        losses = None
    if losses is not None:
        assert all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k and torch.is_tensor(v))
        if full:
            loss, _ = model.parse_losses(losses)
            loss.backward()
            grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
            assert any(g is not None for g in grads) and all(torch.isfinite(g).all() for g in grads if g is not None)
            model.eval()
            with torch.no_grad():
                preds = model(**data, mode='predict')
            assert len(preds) == 2
        return
    x = torch.randn(2, 3, 64, 64)
    out = model(x, mode='tensor')
    out = out[0] if isinstance(out, (tuple, list)) else out
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_and_runs(config):
    cfg = Config.fromfile(osp.join(ROOT, config))
    assert 'mmlit' in cfg.custom_imports['imports']
    assert cfg.default_scope in ('mmdet', 'mmseg', 'mmpretrain')
    assert cfg.model.backbone.type in ('mmlit.LIT', 'mmlit.LITv2')
    if not config.startswith(osp.join('configs', 'toy')):
        # every real backbone starts from ImageNet weights
        assert cfg.model.backbone.get('init_cfg', {}).get('type') == 'Pretrained' or cfg.default_scope == 'mmpretrain'
    if 'rpn_head' in cfg.model:  # R-CNNs: a few RoIs per image, not COCO's thousands (this is a CPU test)
        cfg.merge_from_dict({'model.train_cfg.rpn_proposal.max_per_img': 64,
                             'model.test_cfg.rpn.max_per_img': 32})
    if cfg.model.get('data_preprocessor', {}).get('batch_augments'):  # LSJ pads every batch to 1024x1024
        cfg.model.data_preprocessor.batch_augments = None
    # the configs beyond the papers: a whole training step and a prediction, from initialised weights (heads
    # such as DINO's hold torch.empty parameters until init_weights: NaN in the matcher, by chance of memory)
    full = config.startswith(BEYOND_PAPER)
    if full:
        cfg.model.backbone.init_cfg = None  # nothing is downloaded or read
    registry = __import__(f'{cfg.default_scope}.registry', fromlist=['MODELS'])
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.MODELS.build(cfg.model)  # the others: no init_weights(), nothing is read
        if full:
            model.init_weights()
        model.train()
        _dummy_forward(cfg, model, full=full)
    name = osp.basename(config)
    if name in PAPER_PARAMS:
        params = sum(p.numel() for p in model.parameters()) / 1e6
        assert round(params) == PAPER_PARAMS[name], f'{name}: {params:.2f}M parameters'


def _train_pipeline(cfg):
    """The train dataset's pipeline (through dataset wrappers), or None for a config without one."""
    dataset = cfg.get('train_dataloader', {}).get('dataset', {})
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset.get('pipeline')


@pytest.mark.parametrize('config', CONFIGS)
def test_train_pipeline_loads_annotations_before_resizing(config):
    # A resize before LoadAnnotations scales the image but not the boxes, masks or seg maps loaded after it
    # (at the toy configs' native 128 px the resize was a no-op, and the bug hid until the scale changed).
    pipeline = _train_pipeline(Config.fromfile(osp.join(ROOT, config)))
    if not pipeline:
        return
    types = [t['type'].split('.')[-1] for t in pipeline]
    if 'LoadAnnotations' in types:
        load = types.index('LoadAnnotations')
        resizes = [i for i, t in enumerate(types) if 'Resize' in t or 'Crop' in t]
        assert all(i > load for i in resizes), f'{config}: {types}'


MASK2FORMER = sorted(c for c in CONFIGS if osp.basename(c).startswith('mask2former_'))


def _mask2former_head(cfg):
    return cfg.model.get('panoptic_head') or cfg.model.decode_head


@pytest.mark.parametrize('config', MASK2FORMER)
def test_mask2former_checkpoints_its_pixel_decoder_where_the_backbone_does(config):
    # LIT-S's LSJ step on two images: 10.67 GiB with the backbone checkpointed alone, 4.97 GiB with the
    # pixel decoder's encoder too (docs/speed.md); a config that checkpoints one should checkpoint both
    cfg = Config.fromfile(osp.join(ROOT, config))
    num_cp = _mask2former_head(cfg).pixel_decoder.encoder.get('num_cp', -1)
    expected = _mask2former_head(cfg).pixel_decoder.encoder.num_layers if cfg.model.backbone.get('with_cp') else -1
    assert num_cp == expected, f'{config}: backbone with_cp={cfg.model.backbone.get("with_cp")}, num_cp={num_cp}'


def test_checkpointed_pixel_decoder_gives_the_same_gradients():
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, BEYOND_PAPER, 'mask2former_lit_s_8xb2_lsj_50e_coco.py'))
    decoders, grads, saved = [], [], []
    for num_cp in (6, -1):
        head = _mask2former_head(cfg)
        decoder_cfg = copy.deepcopy(head.pixel_decoder)  # as Mask2FormerHead builds it
        decoder_cfg.update(in_channels=head.in_channels, feat_channels=head.feat_channels,
                           out_channels=head.out_channels)
        decoder_cfg.encoder.num_cp = num_cp
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope('mmdet'):
            decoder = MODELS.build(decoder_cfg)
        decoder.init_weights()
        if decoders:
            decoder.load_state_dict(decoders[0].state_dict())
        decoders.append(decoder.train())
        torch.manual_seed(1)
        feats = [torch.randn(1, c, s, s, requires_grad=True) for c, s in zip((96, 192, 384, 768), (32, 16, 8, 4))]
        nbytes = []

        def pack(t):
            nbytes.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            mask_feature, multi_scale = decoder(feats)
        saved.append(sum(nbytes))
        (mask_feature.square().mean() + sum(f.square().mean() for f in multi_scale)).backward()
        grads.append([f.grad for f in feats] + [p.grad for p in decoder.parameters()])
    # what the forward keeps for the backward: the six encoder layers' activations only with num_cp=-1
    assert saved[0] < 0.5 * saved[1], saved
    assert all(g is not None for g in grads[0]) and len(grads[0]) == len(grads[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
