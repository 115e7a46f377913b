"""Toy models for the deployment tests (tests/test_tools/test_deployment.py, test_mmdeploy.py): the toy
configs of every task, heads whose scores lie apart, their checkpoints and images of several sizes."""
import logging
import os.path as osp

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY = osp.join(ROOT, 'configs', 'toy')
DEMO = osp.join(ROOT, 'demo', 'demo.png')

MASK_RCNN = {arch: osp.join(TOY, f'mask_rcnn_{arch}_fpn_toy_shapes.py') for arch in ('lit_ti', 'lit_s', 'litv2_s')}
RETINANET = osp.join(TOY, 'retinanet_lit_ti_fpn_toy_shapes.py')
FPN = osp.join(TOY, 'fpn_lit_ti_toy_shapes.py')
CLASSIFIER = osp.join(TOY, 'lit_ti_toy_shapes_cls.py')


def spread_heads(model: torch.nn.Module, seed: int = 0, cls_std: float = 0.02) -> torch.nn.Module:
    """Random heads whose scores lie apart: classifiers of weights ``cls_std`` and no bias, small box
    regressions (initialised heads score every box alike, about 0.01: no detection passes the score
    threshold, and ties decide the order)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'cls' in name or 'conv_seg' in name or 'head.fc' in name:
                std = cls_std if name.endswith('weight') else 0.
            elif 'reg' in name and name.endswith('weight'):
                std = 0.003
            else:
                continue
            param.copy_(torch.randn(param.shape, generator=generator) * std)
    return model


def toy_model(config: str):
    from mmengine.logging import MMLogger

    from mmlit_tools.deploy import load_model
    MMLogger.get_instance('mmengine').setLevel(logging.ERROR)
    torch.manual_seed(0)
    model, cfg = load_model(config)
    return spread_heads(model), cfg


def images(tmp_path, tall: bool = False):
    """The demo image (224 x 224) and a wider one of sides that are multiples of 32 (192 x 256); with
    ``tall``, also a taller one (256 x 192)."""
    import cv2
    sizes = {'wide': (256, 192), **({'tall': (192, 256)} if tall else {})}
    paths = [DEMO]
    for name, size in sizes.items():
        paths.append(str(tmp_path / f'{name}.png'))
        cv2.imwrite(paths[-1], cv2.resize(cv2.imread(DEMO), size))
    return paths


def checkpoint_of(config: str, tmp_path) -> str:
    """A checkpoint of :func:`toy_model`'s weights for ``config``, saved in ``tmp_path``."""
    model, _ = toy_model(config)
    path = str(tmp_path / 'toy.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path
