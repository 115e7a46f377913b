"""mmlit.AmpOptimWrapper: MMEngine's AmpOptimWrapper on CUDA, bfloat16 autocast without it."""
import copy
import math
import os.path as osp
import re
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper as MMEngineAmpOptimWrapper
from mmengine.optim import build_optim_wrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper as mmengine_amp
from mmengine.registry import DefaultScope

import mmlit  # noqa: F401  (registers mmlit.AmpOptimWrapper)
from mmlit.engine import AmpOptimWrapper
from mmlit.engine.optimizers import amp_optimizer_wrapper as amp_module
from mmlit.engine.optimizers.cpu_autocast import cpu_autocast
from mmlit.utils import safe_load

# the toy runs' helpers (tests/helpers): the subprocess runner, the options that shorten an epoch
from toy_runs import EPOCH_SHORT, ROOT, TOOLS, TOY, run

CONFIGS = osp.join(ROOT, 'configs')
AMP_TOY = osp.join(TOY, 'mask_rcnn_lit_s_fpn_toy_shapes.py')
CPU_WARNING = 'AmpOptimWrapper: no CUDA device, training with bfloat16 autocast on CPU (no loss scaling)'
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


class TinyNet(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = self.conv(x).mean((2, 3))
        return self.fc(self.norm(x))


AMP_CFG = dict(type='mmlit.AmpOptimWrapper', loss_scale='dynamic',
               optimizer=dict(type='AdamW', lr=1e-2, weight_decay=1e-4),
               paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))


@pytest.fixture
def no_accelerator(monkeypatch):
    """The CPU path, also on a machine with CUDA (where the model below stays on the CPU)."""
    monkeypatch.setattr(amp_module, 'amp_accelerator_available', lambda: False)


def _build(model, **overrides):
    cfg = copy.deepcopy(AMP_CFG)
    cfg.update(overrides)
    return build_optim_wrapper(model, cfg)


def _step(model, wrapper, seen_dtypes=None):
    torch.manual_seed(1)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    hook = None
    if seen_dtypes is not None:
        hook = model.fc.register_forward_hook(lambda m, i, o: seen_dtypes.append(o.dtype))
    with wrapper.optim_context(model):
        loss = nn.functional.cross_entropy(model(x), y)
    wrapper.update_params(loss)
    if hook is not None:
        hook.remove()
    return loss


def test_cpu_step_runs_in_bfloat16_without_loss_scaling(no_accelerator):
    torch.manual_seed(0)
    model = TinyNet()
    wrapper = _build(model)
    assert type(wrapper) is AmpOptimWrapper and isinstance(wrapper, MMEngineAmpOptimWrapper)
    assert wrapper.loss_scaler is None and wrapper.cast_dtype == torch.bfloat16
    before = {k: v.clone() for k, v in model.state_dict().items()}

    seen, grads = [], {}
    hooks = [p.register_hook(lambda g, n=n: grads.__setitem__(n, g.clone())) for n, p in model.named_parameters()]
    loss = _step(model, wrapper, seen)
    for h in hooks:
        h.remove()

    assert seen == [torch.bfloat16], 'the forward did not run in bfloat16'
    assert loss.dtype == torch.float32  # cross entropy: float32 under autocast
    assert grads.keys() == dict(model.named_parameters()).keys()
    for name, grad in grads.items():
        assert grad.dtype == torch.float32 and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    for name, value in model.state_dict().items():
        assert not torch.equal(value, before[name]), f'{name} did not change'
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay float32
    # outside the wrapper's context, nothing is autocast
    assert model.fc(torch.randn(1, 8)).dtype == torch.float32


def test_cpu_state_dict_round_trips(no_accelerator):
    torch.manual_seed(0)
    model = TinyNet()
    wrapper = _build(model)
    for _ in range(2):
        _step(model, wrapper)
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    assert 'base_param_settings' in state  # two parameter groups (decay / no decay on the norm)

    twin = copy.deepcopy(model)
    fresh = _build(twin, optimizer=dict(type='AdamW', lr=5.0, weight_decay=0.5))
    fresh.load_state_dict(copy.deepcopy(state))
    assert fresh.get_lr() == wrapper.get_lr()
    _assert_same_state(fresh.state_dict(), state)

    # and the two go on identically
    _step(model, wrapper)
    _step(twin, fresh)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), name
    _assert_same_state(fresh.state_dict(), wrapper.state_dict())

    # a checkpoint written on a GPU (with its loss scaler's state) resumes on the CPU
    gpu_state = dict(copy.deepcopy(state), loss_scaler={'scale': 65536.0, 'growth_factor': 2.0,
                                                         'backoff_factor': 0.5, 'growth_interval': 2000,
                                                         '_growth_tracker': 3})
    third = _build(copy.deepcopy(model))
    third.load_state_dict(gpu_state)
    assert 'loss_scaler' in gpu_state  # the caller's dict is left as it was
    _assert_same_state(third.state_dict(), state)


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    assert a['param_groups'] == b['param_groups']
    assert a['state'].keys() == b['state'].keys()
    for index, slots in a['state'].items():
        for key, value in slots.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b['state'][index][key])), (index, key)


def test_cpu_rejects_float16_and_accepts_bfloat16(no_accelerator):
    with pytest.raises(ValueError, match='bfloat16'):
        _build(TinyNet(), dtype='float16')
    assert _build(TinyNet(), dtype='bfloat16', loss_scale=512.).cast_dtype == torch.bfloat16


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_resolves_from_the_downstream_scopes(scope, no_accelerator):
    pytest.importorskip(scope)
    registry = __import__(f'{scope}.registry', fromlist=['OPTIM_WRAPPERS'])
    with DefaultScope.overwrite_default_scope(scope):
        assert type(_build(TinyNet())) is AmpOptimWrapper
        assert registry.OPTIM_WRAPPERS.get('mmlit.AmpOptimWrapper') is AmpOptimWrapper
        # plain 'AmpOptimWrapper' is still MMEngine's
        assert registry.OPTIM_WRAPPERS.get('AmpOptimWrapper') is MMEngineAmpOptimWrapper


def test_mmcv_ops_without_bfloat16_cpu_kernels_run_in_float32():
    """nms and RoIAlign have float32-only CPU kernels: cpu_autocast runs them in float32."""
    ops = pytest.importorskip('mmcv.ops')
    torch.manual_seed(0)
    boxes = torch.rand(50, 2) * 50
    boxes = torch.cat([boxes, boxes + 5 + torch.rand(50, 2) * 20], 1)
    scores = torch.rand(50)
    feats = torch.randn(2, 4, 16, 16, requires_grad=True)
    rois = torch.cat([torch.tensor([[0.], [1.], [1.]]), torch.tensor([[1., 1, 9, 9], [0, 2, 15, 7], [3, 3, 6, 12]])], 1)
    roi_align = ops.RoIAlign((3, 3), spatial_scale=1., sampling_ratio=2)

    with pytest.raises(RuntimeError):  # what MMCV does without the float32 islands
        ops.nms(boxes.bfloat16(), scores.bfloat16(), 0.5)
    with pytest.raises(RuntimeError):
        roi_align(feats.bfloat16(), rois.bfloat16())

    ref_dets, ref_keep = ops.nms(boxes.bfloat16().float(), scores.bfloat16().float(), 0.5)
    ref = roi_align(feats.bfloat16().float(), rois.bfloat16().float())
    ref_grad, = torch.autograd.grad(ref.square().sum(), feats)
    with cpu_autocast():
        dets, keep = ops.nms(boxes.bfloat16(), scores.bfloat16(), 0.5)
        out = roi_align(feats.bfloat16(), rois.bfloat16())
        fp32_out = roi_align(feats, rois)
    assert torch.equal(keep, ref_keep) and dets.shape == ref_dets.shape
    assert out.dtype == torch.bfloat16 and fp32_out.dtype == torch.float32
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)
    grad, = torch.autograd.grad(out.float().square().sum(), feats)  # backward: float32 kernel, bf16 cast
    torch.testing.assert_close(grad, ref_grad, atol=5e-2, rtol=5e-2)
    # nothing stays patched
    with torch.autocast('cpu', dtype=torch.bfloat16), pytest.raises(RuntimeError):
        ops.nms(boxes.bfloat16(), scores.bfloat16(), 0.5)


def test_toy_config_carries_the_lit_s_detection_recipe():
    """The toy restates the LIT-S lines of the COCO config (one base only): they must agree."""
    coco = Config.fromfile(osp.join(CONFIGS, 'mask_rcnn_lit_s_fpn_1x_coco.py'))
    toy = Config.fromfile(AMP_TOY)
    assert coco.optim_wrapper.type == toy.optim_wrapper.type == 'mmlit.AmpOptimWrapper'
    assert toy.optim_wrapper.loss_scale == coco.optim_wrapper.loss_scale == 'dynamic'
    for key, value in coco.optim_wrapper.paramwise_cfg.custom_keys.items():
        assert toy.optim_wrapper.paramwise_cfg.custom_keys[key] == value, key
    for key in ('arch', 'with_cp'):
        assert toy.model.backbone[key] == coco.model.backbone[key], key
    assert toy.model.neck.in_channels == coco.model.neck.in_channels
    ti_toy = Config.fromfile(osp.join(TOY, 'mask_rcnn_lit_ti_fpn_toy_shapes.py'))
    assert toy.train_dataloader.dataset == ti_toy.train_dataloader.dataset
    assert toy.model.backbone.init_cfg is None  # from scratch
    retina = Config.fromfile(osp.join(CONFIGS, 'retinanet_lit_s_fpn_1x_coco.py'))
    assert retina.optim_wrapper.type == 'mmlit.AmpOptimWrapper' and retina.optim_wrapper.loss_scale == 'dynamic'


# ---- end to end: tools/train.py on the toy data ---------------------------------------------------

LOSS = re.compile(r'\b(loss(?:_\w+)?): (\S+)')


def _train(workspace, config, name, *extra, epochs=1, opts=()):
    work_dir = workspace / name
    log = run([sys.executable, osp.join(TOOLS, 'train.py'), config, '--work-dir', str(work_dir), *extra,
               '--cfg-options', *EPOCH_SHORT, f'train_cfg.max_epochs={epochs}', 'default_hooks.logger.interval=1',
               *opts], workspace)
    losses = [(k, float(v)) for line in log.splitlines() if 'Epoch(train)' in line for k, v in LOSS.findall(line)]
    assert {'loss', 'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= {k for k, _ in losses}, log[-3000:]
    assert all(math.isfinite(v) for _, v in losses), losses
    checkpoint = work_dir / f'epoch_{epochs}.pth'
    assert checkpoint.exists()
    return log, safe_load(checkpoint, map_location='cpu')


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path (CUDA takes MMEngine\'s)')
def test_train_lit_s_toy_with_amp_on_cpu(workspace):
    log, ckpt = _train(workspace, AMP_TOY, 'amp_lit_s')
    assert log.count(CPU_WARNING) == 1
    assert 'loss_scaler' not in ckpt['optimizer']
    assert ckpt['meta']['iter'] == 2
    for name, value in ckpt['state_dict'].items():
        assert not value.is_floating_point() or value.dtype == torch.float32, name


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path (CUDA takes MMEngine\'s)')
def test_train_lit_ti_toy_with_amp_flag_on_cpu_and_resume(workspace):
    config = osp.join(TOY, 'mask_rcnn_lit_ti_fpn_toy_shapes.py')
    log, first = _train(workspace, config, 'amp_flag_lit_ti', '--amp', opts=['train_cfg.val_interval=100'])
    assert log.count(CPU_WARNING) == 1
    assert 'loss_scaler' not in first['optimizer']
    # resume on the CPU: the optimizer state comes back and training goes on
    log, second = _train(workspace, config, 'amp_flag_lit_ti', '--amp', '--resume', epochs=2,
                         opts=['train_cfg.val_interval=100'])
    assert 'resumed' in log.lower()
    assert second['meta']['iter'] == 2 * first['meta']['iter']
    steps = [s['step'] for s in second['optimizer']['state'].values()]
    assert steps and all(int(s) == second['meta']['iter'] for s in steps)


# ---- CUDA: MMEngine's path (float16, dynamic loss scaling) ----------------------------------------

@needs_cuda
def test_cuda_is_mmengines_amp():
    model = TinyNet().cuda()
    wrapper = _build(model)
    assert isinstance(wrapper.loss_scaler, mmengine_amp.GradScaler)  # the GradScaler MMEngine builds
    assert wrapper.cast_dtype is None  # MMEngine's default: float16 autocast
    seen = []
    x, y = torch.randn(4, 3, 8, 8, device='cuda'), torch.tensor([0, 1, 0, 1], device='cuda')
    model.fc.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with wrapper.optim_context(model):
        loss = nn.functional.cross_entropy(model(x), y)
    wrapper.update_params(loss)
    assert seen == [torch.float16]
    state = wrapper.state_dict()
    assert state['loss_scaler']['scale'] > 0
    fresh = _build(copy.deepcopy(model))
    fresh.load_state_dict(copy.deepcopy(state))
    assert fresh.loss_scaler.get_scale() == wrapper.loss_scaler.get_scale()


@pytest.mark.slow
@needs_cuda
def test_train_lit_s_toy_with_amp_on_cuda(workspace):
    log, ckpt = _train(workspace, AMP_TOY, 'amp_lit_s_cuda')
    assert CPU_WARNING not in log
    assert ckpt['optimizer']['loss_scaler']['scale'] > 0  # dynamic loss scaling ran
