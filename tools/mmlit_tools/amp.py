"""Reduced-precision inference of a whole detector, segmentor or classifier: mmlit's bf16 mode on CPU.

MMEngine's ``TestLoop(fp16=True)`` puts the whole model under autocast. On CPU that is bfloat16 all the
way into the heads' post-processing, where mmcv's CPU ops (NMS, RoIAlign) take float32 only. Here the
feature extractor, where nearly all of the compute is (``backbone``, and ``neck`` when there is one), runs
under autocast and hands float32 features to the heads, which run as trained.
"""
import functools
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils._pytree import tree_map


def autocast_features(model: nn.Module,
                      dtype: torch.dtype = torch.bfloat16,
                      device_type: str = 'cpu',
                      parts: Sequence[str] = ('backbone', 'neck')) -> nn.Module:
    """Run ``parts`` of ``model`` under ``torch.autocast(device_type, dtype)``, their floating outputs cast
    back to float32; returns ``model``.

    Args:
        model (nn.Module): A detector, segmentor or classifier (or a DDP wrapper of one).
        dtype (torch.dtype): The autocast dtype. Defaults to bfloat16.
        device_type (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        parts (Sequence[str]): Submodules to run under autocast; missing ones are skipped.
    """
    model = getattr(model, 'module', model)
    found = [name for name in parts if isinstance(getattr(model, name, None), nn.Module)]
    if not found:
        raise ValueError(f'{type(model).__name__} has none of {list(parts)} to run under autocast')
    for name in found:
        module = getattr(model, name)
        forward = module.forward

        @functools.wraps(forward)
        def under_autocast(*args, _forward=forward, **kwargs):
            with torch.autocast(device_type, dtype=dtype):
                out = _forward(*args, **kwargs)
            return tree_map(lambda t: t.float() if torch.is_tensor(t) and t.is_floating_point() else t, out)

        module.forward = under_autocast
    return model
