"""The model that the analysis, deployment and visualisation tools build (and load), and its inputs.

A *target* is either a LIT arch name (``ti``, ``s``, ``m``, ``b`` or a long name): the bare backbone with
all four outputs; or a config file: the whole detector, segmentor or classifier it builds (the config's
``default_scope`` says which). Inputs are random images, already normalised, with data samples carrying
what the model needs for a forward pass and, for a training step, random ground truth.
"""
import logging
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope, init_default_scope


def is_config(target: str) -> bool:
    """Whether ``target`` is a config file (ends with ``.py`` or is an existing file), not an arch name."""
    return target.endswith('.py') or osp.isfile(target)


def build_target(target: str, cfg_options: Optional[dict] = None, **backbone_kwargs) -> nn.Module:
    """Build a backbone from an arch name (a LIT arch: ``ti``, ``s``, ``m``, ``b``; a LITv2 arch:
    ``litv2-s``, ``litv2-m``, ``litv2-b``) or a whole model from a config, weights random."""
    if not is_config(target):
        from mmlit.models.backbones import resolve_arch
        kwargs = dict(out_indices=(0, 1, 2, 3))
        kwargs.update(backbone_kwargs)
        cls, arch = resolve_arch(target)
        model = cls(arch=arch, **kwargs)
        model.init_weights()
        return model
    cfg = Config.fromfile(target)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope', 'mmlit')
    init_default_scope(scope)
    drop_pretrained(cfg.model)
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import MODELS
        model = MODELS.build(cfg.model)
    model.init_weights()
    model.default_scope = scope
    return model


# The backbones a user would pick instead of LIT, by short name (mmdet's, as the detectors use them).
PEER_BACKBONES = {
    'r18': dict(type='mmdet.ResNet', depth=18, out_indices=(0, 1, 2, 3)),
    'r50': dict(type='mmdet.ResNet', depth=50, out_indices=(0, 1, 2, 3)),
    'swin-t': dict(type='mmdet.SwinTransformer', embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                   window_size=7, out_indices=(0, 1, 2, 3)),
    'pvt-s': dict(type='mmdet.PyramidVisionTransformer', embed_dims=64, num_layers=[3, 4, 6, 3],
                  num_heads=[1, 2, 5, 8], out_indices=(0, 1, 2, 3)),
    'pvtv2-b2': dict(type='mmdet.PyramidVisionTransformerV2', embed_dims=64, num_layers=[3, 4, 6, 3],
                     out_indices=(0, 1, 2, 3)),
}


def build_peer(peer: str) -> nn.Module:
    """A backbone to compare LIT with, weights random: a name of :data:`PEER_BACKBONES` (``r50``, ``swin-t``,
    ``pvt-s``, ...) or a config of mmdet, mmseg or mmpretrain (a path, or ``mmdet::swin/...py``), whose
    ``model.backbone`` is built in the config's scope."""
    from mmengine.registry import MODELS
    if peer in PEER_BACKBONES:
        cfg, scope = dict(PEER_BACKBONES[peer]), None
    elif is_config(peer) or '::' in peer:
        if '::' in peer:
            from mmengine.hub import get_config
            config = get_config(peer)
        else:
            config = Config.fromfile(peer)
        if 'backbone' not in config.get('model', {}):
            raise ValueError(f'{peer} has no model.backbone to compare with')
        cfg, scope = config.model.backbone, config.get('default_scope')
        cfg.pop('init_cfg', None)
    else:
        raise ValueError(f'Unknown peer {peer!r}: give one of {sorted(PEER_BACKBONES)} or a config file')
    if scope is not None:
        init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg)
    model.init_weights()
    return model


def drop_pretrained(model_cfg) -> None:
    """Drop the backbone's ``Pretrained`` ``init_cfg`` (ImageNet weights): for models whose weights come
    from elsewhere (a checkpoint) or do not matter (analysis), so no file that may not exist is read."""
    backbone = model_cfg.get('backbone')
    if backbone is not None and (backbone.get('init_cfg') or {}).get('type') == 'Pretrained':
        backbone['init_cfg'] = None


def load_backbone(target: str, checkpoint: Optional[str] = None) -> nn.Module:
    """The LIT backbone of ``target`` (a config's model, or a bare backbone for an arch name) in eval mode,
    with the backbone weights of ``checkpoint``: an mmlit checkpoint or an official LIT one (converted on the
    fly). Every backbone parameter must come from the checkpoint; extra entries (a class token the dense
    backbone lacks, heads) are left out with a warning."""
    from mmengine.runner import CheckpointLoader

    from mmlit.models.utils import guess_arch, lit_to_mmlit
    from mmlit.utils.safe_checkpoint import CheckpointError
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # no per-parameter initialisation report
    try:
        model = build_target(target)
    finally:
        logger.setLevel(level)
    backbone = getattr(model, 'backbone', model)
    if checkpoint is not None:
        state_dict = lit_to_mmlit(CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu'))
        state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
        try:
            result = backbone.load_state_dict(state_dict, strict=False)
        except RuntimeError as err:  # shapes differ: another arch
            first_mismatch = (str(err).splitlines()[1:] or [str(err)])[0].strip()
            raise CheckpointError(
                f'{checkpoint} does not fit the backbone of {target}: it holds the weights of '
                f'{guess_arch(state_dict) or "another arch"} ({first_mismatch}); pass the checkpoint of this '
                'arch, or the arch of this checkpoint.') from None
        if result.missing_keys:
            raise CheckpointError(f'{checkpoint} does not hold the weights of this backbone: missing '
                                  f'{result.missing_keys[:5]} ({len(result.missing_keys)} keys). Is it the '
                                  f'checkpoint of {target}?')
        if result.unexpected_keys:
            logger.warning(f'{checkpoint}: {len(result.unexpected_keys)} backbone entries this backbone does '
                           f'not use, left out: {result.unexpected_keys[:5]}')
    return backbone.eval()


def task_of(model: nn.Module) -> str:
    """``backbone``, ``mmdet``, ``mmseg`` or ``mmpretrain``."""
    return getattr(model, 'default_scope', 'backbone')


def dummy_batch(model: nn.Module, batch: int, shape: Sequence[int], with_gt: bool = False,
                device: str = 'cpu', seed: int = 0) -> Tuple[torch.Tensor, Optional[List]]:
    """Random normalised images (batch, 3, H, W) and data samples for ``model``'s task."""
    gen = torch.Generator().manual_seed(seed)
    H, W = shape
    inputs = torch.randn(batch, 3, H, W, generator=gen).to(device)
    task = task_of(model)
    if task == 'backbone':
        return inputs, None
    meta = dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W), batch_input_shape=(H, W),
                scale_factor=(1., 1.))
    samples = []
    for _ in range(batch):
        if task == 'mmdet':
            samples.append(_det_sample(model, meta, gen, with_gt))
        elif task == 'mmseg':
            samples.append(_seg_sample(model, meta, gen, with_gt))
        else:
            from mmpretrain.structures import DataSample
            sample = DataSample(metainfo=meta)
            if with_gt:
                num_classes = model.head.num_classes
                sample.set_gt_label(int(torch.randint(num_classes, (1, ), generator=gen)))
            samples.append(sample)
    return inputs, [s.to(device) for s in samples]


def _det_sample(model, meta, gen, with_gt):
    """An mmdet ``DetDataSample`` with the metainfo ``meta``, and random ground truth if asked.

    Args:
        model (nn.Module): The detector; its ``with_mask`` (a panoptic head, for the MaskFormers) says
            whether instance masks are needed.
        meta (dict): Image metainfo; ``img_shape`` is (H, W).
        gen (torch.Generator): Generator of the random boxes.
        with_gt (bool): Add ``gt_instances``: 3 random boxes (x1, y1, x2, y2) inside the image, label 0,
            and for a mask detector their filled boxes as ``BitmapMasks``; for a panoptic head with stuff
            classes, a ``gt_sem_seg`` of random stuff labels.

    Returns:
        DetDataSample: The sample (on the CPU).
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    sample = DetDataSample(metainfo=meta)
    if with_gt:
        H, W = meta['img_shape']
        num = 3
        xy = torch.rand(num, 2, generator=gen) * torch.tensor([W * .6, H * .6])
        wh = (torch.rand(num, 2, generator=gen) * .3 + .1) * torch.tensor([W, H])
        boxes = torch.cat((xy, xy + wh), dim=1)
        gt = InstanceData(bboxes=boxes, labels=torch.zeros(num, dtype=torch.long))
        if getattr(model, 'with_mask', False) or hasattr(model, 'panoptic_head'):  # Mask R-CNN, MaskFormers
            masks = torch.zeros(num, H, W, dtype=torch.uint8)
            for i, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
                masks[i, y0:y1, x0:x1] = 1
            gt.masks = BitmapMasks(masks.numpy(), H, W)
        sample.gt_instances = gt
        head = getattr(model, 'panoptic_head', None)
        if head is not None and getattr(head, 'num_stuff_classes', 0):  # panoptic: stuff labels per pixel
            from mmengine.structures import PixelData
            labels = torch.randint(head.num_things_classes, head.num_classes, (1, H, W), generator=gen)
            sample.gt_sem_seg = PixelData(sem_seg=labels)
    return sample


def _seg_sample(model, meta, gen, with_gt):
    """An mmseg ``SegDataSample`` with the metainfo ``meta``; with ``with_gt``, a random (1, H, W)
    ``gt_sem_seg`` of labels below the decode head's ``num_classes``, drawn from ``gen``."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=meta)
    if with_gt:
        H, W = meta['img_shape']
        num_classes = model.decode_head.num_classes
        sample.gt_sem_seg = PixelData(data=torch.randint(num_classes, (1, H, W), generator=gen))
    return sample


class TensorForward(nn.Module):
    """``model`` as a module of its image tensor alone: the backbone, or the model's ``tensor`` mode
    (backbone, neck and heads, no post-processing) with fixed data samples. For tracing."""

    def __init__(self, model: nn.Module, data_samples: Optional[List] = None):
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor):
        """The backbone's outputs, or the whole model's raw ``tensor``-mode outputs, for ``inputs``
        (B, 3, H, W)."""
        if self.data_samples is None:
            return self.model(inputs)
        return self.model(inputs, self.data_samples, mode='tensor')


def run_step(model: nn.Module, inputs: torch.Tensor, data_samples: Optional[List], train: bool):
    """One inference pass (``predict`` for a whole model) or one training step's forward and backward
    (``loss`` for a whole model, a sum over the outputs for a backbone)."""
    if not train:
        with torch.no_grad():
            if data_samples is None:
                return model(inputs)
            return model.predict(inputs, data_samples)
    if data_samples is None:
        outs = model(inputs)
        loss = sum(out.float().mean() for out in outs)
    else:
        loss, _ = model.parse_losses(model.loss(inputs, data_samples))
    loss.backward()
    return loss
