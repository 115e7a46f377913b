import copy

import pytest
import torch
from mmengine.registry import DefaultScope

import mmlit  # noqa: F401
from mmlit.models import LIT, LITv2

TI_CHANNELS = (64, 128, 320, 512)
S_CHANNELS = (96, 192, 384, 768)


def _small(**kwargs):
    """A small LIT (both designs' features) for fast structural tests."""
    arch = dict(embed_dims=[16, 32, 48, 64], depths=[1, 2, 2, 1], num_heads=[1, 2, 3, 4],
                mlp_ratios=[2, 2, 2, 2])
    arch.update(kwargs.pop('arch', {}))
    return LIT(arch=arch, pretrain_img_size=64, **kwargs)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
@pytest.mark.parametrize('type_name', ['LIT', 'mmlit.LIT'])
def test_builds_from_every_downstream_registry(scope, type_name):
    registry = pytest.importorskip(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.MODELS.build(dict(type=type_name, arch='ti'))
    assert isinstance(model, LIT)


@pytest.mark.parametrize('arch,channels', [('ti', TI_CHANNELS), ('tiny', TI_CHANNELS), ('s', S_CHANNELS),
                                           ('small', S_CHANNELS), ('m', S_CHANNELS),
                                           ('b', (128, 256, 512, 1024))])
def test_dense_shapes_at_224(arch, channels):
    model = LIT(arch=arch).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, c, 224 // s, 224 // s)
                                              for c, s in zip(channels, (4, 8, 16, 32))]


@pytest.mark.parametrize('arch', ['ti', 's'])
@pytest.mark.parametrize('hw', [(97, 131), (33, 65), (17, 17), (5, 9), (1, 1)])
def test_any_input_size(arch, hw):
    """Outputs are ceil(H / stride): strides 4/8/16/32 for FPN at any size, tiny ones included."""
    model = LIT(arch=arch, drop_path_rate=0.).eval()
    H, W = hw
    with torch.no_grad():
        outs = model(torch.randn(2, 3, H, W))
    expected = []
    h, w = -(-H // 4), -(-W // 4)
    for _ in range(4):
        expected.append((h, w))
        h, w = -(-h // 2), -(-w // 2)
    assert [tuple(o.shape[-2:]) for o in outs] == expected
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('hw', [(64, 64), (20, 28), (4, 4)])
def test_batch_one_in_training_mode(hw):
    model = _small().train()
    outs = model(torch.randn(1, 3, *hw))
    sum(o.sum() for o in outs).backward()
    assert model.patch_embed.projection.weight.grad is not None


def test_classification_outputs():
    ti = LIT(arch='ti', out_type='cls_token', out_indices=(3, ))
    s = LIT(arch='s', out_type='avg_featmap', out_indices=(3, ))
    x = torch.randn(2, 3, 224, 224)
    assert ti(x)[-1].shape == (2, 512)
    assert s(x)[-1].shape == (2, 768)
    assert ti.cls_token is not None and hasattr(ti, 'norm3') and not hasattr(ti, 'norm1')
    assert hasattr(s, 'norm3') and not hasattr(s, 'norm2')


def test_dense_output_norms():
    assert [hasattr(LIT(arch='s'), f'norm{i}') for i in range(4)] == [False, True, True, True]
    assert not any(hasattr(LIT(arch='ti'), f'norm{i}') for i in range(4))
    seg = LIT(arch='s', out_norm_indices=(0, 1, 2, 3))
    assert all(hasattr(seg, f'norm{i}') for i in range(4))


def test_out_indices():
    model = _small(out_indices=(1, -1)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 64]


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match=r"Unknown LIT arch 'xl'.*'b', 'base'.*'ti', 'tiny'"):
        LIT(arch='xl')
    with pytest.raises(ValueError, match='missing keys'):
        LIT(arch=dict(embed_dims=[8, 16, 32, 64]))
    with pytest.raises(ValueError, match='frozen_stages'):
        LIT(arch='ti', frozen_stages=5)
    with pytest.raises(ValueError, match='out_type'):
        LIT(arch='ti', out_type='pooled')
    with pytest.raises(ValueError, match="'avg_featmap'"):
        LIT(arch='s', out_type='cls_token')
    with pytest.raises(ValueError, match='out_indices must contain 3'):
        LIT(arch='s', out_type='avg_featmap', out_indices=(0, 1))
    with pytest.raises(ValueError, match='out_indices'):
        LIT(arch='s', out_indices=(4, ))


def test_arch_dict_equals_named_arch():
    named = LIT(arch='s')
    custom = LIT(arch=copy.deepcopy(LIT.arch_zoo['s']))
    assert [n for n, _ in named.named_parameters()] == [n for n, _ in custom.named_parameters()]


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2, 4])
def test_frozen_stages(frozen_stages):
    model = _small(frozen_stages=frozen_stages)
    model.train()
    x = torch.randn(2, 3, 32, 32)
    loss = sum(o.sum() for o in model(x))
    if loss.requires_grad:
        loss.backward()
    frozen = [model.patch_embed] if frozen_stages >= 0 else []
    frozen += [model.stages[i] for i in range(max(frozen_stages, 0))]
    frozen += [getattr(model, f'norm{i}') for i in range(max(frozen_stages, 0)) if hasattr(model, f'norm{i}')]
    for module in frozen:
        assert not module.training
        for p in module.parameters():
            assert not p.requires_grad and p.grad is None
    for i in range(max(frozen_stages, 0), 4):
        assert model.stages[i].training
        assert all(p.requires_grad and p.grad is not None for p in model.stages[i].parameters())
    if frozen_stages >= 2:  # frozen DTM BatchNorm keeps its running statistics
        bn = model.stages[1].downsample.norm
        before = bn.running_mean.clone()
        model(x)
        torch.testing.assert_close(bn.running_mean, before)


def test_norm_eval():
    model = _small(norm_eval=True).train()
    bns = [s.downsample.norm for s in model.stages[1:]]
    assert all(not bn.training for bn in bns)
    assert model.stages[2].blocks[0].training
    before = [bn.running_mean.clone() for bn in bns]
    model(torch.randn(2, 3, 32, 32))
    for bn, b in zip(bns, before):
        torch.testing.assert_close(bn.running_mean, b)
    assert all(bn.training for bn in (s.downsample.norm for s in _small().train().stages[1:]))


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = _small(drop_path_rate=0.)
    ckpt = _small(drop_path_rate=0., with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 48, 40)
    outs = []
    for model in (plain, ckpt):
        model.train()
        y = model(x)
        sum((o * o).sum() for o in y).backward()
        outs.append((y, {n: p.grad for n, p in model.named_parameters()}))
    for a, b in zip(outs[0][0], outs[1][0]):
        torch.testing.assert_close(a, b)
    for name, grad in outs[0][1].items():
        torch.testing.assert_close(grad, outs[1][1][name], msg=lambda m: f'{name}: {m}')


def test_drop_path_is_linear():
    model = LIT(arch='s', drop_path_rate=0.3)
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for s in model.stages for b in s.blocks]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.3, 12))


def test_frozen_stages_4_freezes_the_class_token():
    model = LIT(arch='ti', out_type='cls_token', out_indices=(3, ), frozen_stages=4).train()
    assert not model.cls_token.requires_grad
    assert not any(p.requires_grad for p in model.parameters())
    assert LIT(arch='ti', out_type='cls_token', out_indices=(3, ), frozen_stages=3).cls_token.requires_grad


def test_init_cfg_of_the_user_is_kept():
    """A non-Pretrained init_cfg initialises the backbone as it says; the official initialisation runs
    only without one (as mmdet's Swin)."""
    model = _small(init_cfg=dict(type='Constant', layer=['Linear', 'LayerNorm'], val=0.5, bias=0.25))
    model.init_weights()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all((m.weight == 0.5).all() and (m.bias == 0.25).all() for m in linears)
    assert all((m.weight == 0.5).all() for m in model.modules() if isinstance(m, torch.nn.LayerNorm))
    default = _small()
    default.init_weights()
    weights = torch.cat([m.weight.flatten() for m in default.modules() if isinstance(m, torch.nn.Linear)])
    assert 0.015 < weights.std() < 0.025  # the official truncated normal, std 0.02
    assert all((m.bias == 0).all() for m in default.modules() if isinstance(m, torch.nn.Linear))


def test_arch_names_resolve_in_one_place():
    from mmlit.models.backbones import resolve_arch
    assert resolve_arch('S') == (LIT, 's') and resolve_arch('tiny') == (LIT, 'tiny')
    assert resolve_arch('litv2-s') == resolve_arch('LITv2_s') == resolve_arch('litv2s') == (LITv2, 's')
    with pytest.raises(ValueError, match="valid names are .*'litv2-b'"):
        resolve_arch('litv2-ti')


def test_top_level_exports():
    import mmlit
    assert mmlit.LIT is LIT and mmlit.LITv2 is LITv2


def test_init_weights():
    model = _small()
    model.init_weights()
    for stage in model.stages[1:]:
        assert stage.downsample.conv_offset.weight.abs().sum() == 0
        assert stage.downsample.conv_offset.bias.abs().sum() == 0
    table = model.stages[2].blocks[0].attn.relative_position_bias_table
    assert 0 < table.std() < 0.05


def test_position_embedding_resized_to_input():
    model = LIT(arch='ti').eval()
    with torch.no_grad():
        small = model(torch.randn(1, 3, 160, 96))
    assert small[-1].shape == (1, 512, 5, 3)


# Parameters of the official ImageNet classifiers (github.com/zhuang-group/LIT: lit_ti(), and LIT() with
# the lit-small/medium/base configs), counted on the official code: 19.9M / 28.0M / 49.4M / 87.3M.
OFFICIAL_PARAMS = dict(ti=19_886_272, s=27_973_720, m=49_372_264, b=87_292_384)


@pytest.mark.parametrize('arch', ['ti', 's', 'm', 'b'])
def test_classifier_parameters_match_the_official_models(arch):
    from mmpretrain.models import ImageClassifier  # noqa: F401  (registers the classifier)
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='mmlit.LIT', arch=arch, out_type='cls_token' if arch == 'ti' else 'avg_featmap',
                          out_indices=(3, )),
            head=dict(type='LinearClsHead', num_classes=1000,
                      in_channels=LIT.arch_zoo[arch]['embed_dims'][-1])))
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[arch]


@pytest.mark.parametrize('cls', [LIT, LITv2])
def test_arch_zoo_lists_what_varies(cls):
    """Each arch gives the required settings and only those of the design it changes; parsing completes
    it with the design (the paper's: LIT-Ti PVT-like, LIT-S/M/B Swin-like, LITv2 with HiLo windows)."""
    for name, settings in cls.arch_zoo.items():
        assert set(cls.arch_required) <= set(settings) <= set(cls.arch_required) | set(cls.arch_defaults), name
        assert not [k for k in cls.arch_defaults if settings.get(k, object()) == cls.arch_defaults[k]], name
        assert cls._parse_arch(name) == {**cls.arch_defaults, **settings}
    if cls is LIT:
        ti, s = LIT._parse_arch('ti'), LIT._parse_arch('small')
        assert ti['abs_pos_embed'] and ti['cls_token'] and not ti['rel_pos_bias'] and ti['norm_eps'] == 1e-6
        assert s['rel_pos_bias'] and not s['abs_pos_embed'] and s['out_norm_indices'] == (1, 2, 3)
        assert ti['msa_stages'] == s['msa_stages'] == (2, 3)
    else:
        assert LITv2._parse_arch('b')['local_ws'] == (0, 0, 2, 1) and LITv2._parse_arch('m')['alpha'] == 0.9


@pytest.mark.parametrize('type_name', ['LIT', 'LITv2'])
@pytest.mark.parametrize('training', [True, False])
def test_dense_outputs_are_contiguous_for_mmcv_roi_align(type_name, training):
    """The maps come out contiguous (B, C, H, W), as from any mmdet backbone. mmcv's RoIAlign reads its
    input's memory as that layout: on the channels-last view of the tokens it pooled garbage, and Mask
    R-CNN's RoI heads learned next to nothing."""
    from mmcv.ops import RoIAlign

    from mmlit.registry import MODELS
    arch = dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1], num_heads=[1, 2, 3, 4], mlp_ratios=[2, 2, 2, 2])
    model = MODELS.build(dict(type=type_name, arch=arch, pretrain_img_size=64)).train(training)
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 96))
    assert all(out.is_contiguous() for out in outs)
    roi_align = RoIAlign((7, 7), spatial_scale=1 / 4, sampling_ratio=0, aligned=True)
    rois = torch.tensor([[0., 4., 8., 40., 60.], [1., 20., 0., 90., 50.]])
    # torchvision's RoIAlign (the same sampling) reads any layout: the reference
    torchvision_ops = pytest.importorskip('torchvision.ops')
    reference = torchvision_ops.roi_align(outs[0], rois, (7, 7), 1 / 4, sampling_ratio=0, aligned=True)
    torch.testing.assert_close(roi_align(outs[0], rois), reference, rtol=1e-5, atol=1e-5)


def test_bad_inputs_say_what_is_wrong():
    model = _small().eval()
    with pytest.raises(ValueError, match=r'batch of images of shape \(B, 3, H, W\); got \(3, 64, 64\) \(one image: add '
                                         r'the batch dim with x\[None\]\)'):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match=r'empty batch \(0 images'):
        model(torch.randn(0, 3, 64, 64))
    with pytest.raises(ValueError, match='built for 3-channel images'):
        model(torch.randn(1, 1, 64, 64))


@pytest.mark.parametrize('convert_weights', [True, False])
def test_pretrained_weights_of_another_arch_are_refused(convert_weights, tmp_path):
    """LIT-S weights for a LIT-Ti backbone would load 0 of its tensors: MMEngine only warns, and the model
    counts as initialised; mmlit refuses with what did not fit and the arch the weights are of."""
    path = tmp_path / 'lit_s.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in LIT(arch='s').state_dict().items()}}, path)
    model = LIT(arch='ti', convert_weights=convert_weights,
                init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    message = r"does not fit this LIT backbone: only \d of its 185 tensors.*looks like mmlit.LIT arch='s'"
    with pytest.raises(mmlit.utils.CheckpointError, match=message):
        model.init_weights()
    assert not model._is_init


def test_pretrained_weights_that_fit_mostly_still_load(tmp_path):
    """More than half of the tensors: loaded, the rest reported by MMEngine as missing."""
    source = LIT(arch='ti')
    state = {f'backbone.{k}': v for k, v in source.state_dict().items() if not k.startswith('stages.3.')}
    torch.save({'state_dict': state}, tmp_path / 'partial.pth')
    model = LIT(arch='ti', convert_weights=True,
                init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'partial.pth')))
    model.init_weights()
    torch.testing.assert_close(model.patch_embed.projection.weight, source.patch_embed.projection.weight)
