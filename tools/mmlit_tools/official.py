"""The original authors' model code beside mmlit's, for side-by-side benchmarks and output checks.

mmlit ships none of that code. :func:`build_official` imports a detection backbone from the user's own
checkout of github.com/zhuang-group/LIT (LIT-Ti, LIT-S/M/B) or github.com/ziplab/LITv2 (LITv2-S/M/B) as
it is, builds it with the settings of an mmlit arch, and can give it the weights of an mmlit backbone,
so that both compute the same function. The official files need PyTorch and timm (``pip install timm``),
plus things that do not exist on a current OpenMMLab stack; those are replaced by stand-ins, only for
the imported file:

- the checkout's compiled CUDA DCN (``mm_modules.DCN``): :class:`DeformConv2dPack`, the same layer on
  ``mmcv.ops.deform_conv2d`` (any device, nothing to compile);
- the registries of the mmdet version the file was written for (``mmdet.models.builder``, ``..builder``,
  ``mmdet.registry``): a registry that registers nothing, so mmlit's and mmdet's own names stay theirs;
- mmdet 2.x / mmcv 1.x checkpoint and logger helpers (``mmcv_custom``, ``mmcv.runner``,
  ``mmdet.utils.get_root_logger``): the backbones are built without ``pretrained``, so the checkpoint
  loaders are never called (they raise if they are).

    from mmlit_tools.official import build_official
    official = build_official('~/src/LITv2', 'litv2-s', weights_from=mmlit_backbone)
"""
import builtins
import math
import os.path as osp
import types
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from torch.nn.modules.utils import _pair

# family -> (file of the official detection backbone, inside the checkout; class name)
OFFICIAL_BACKBONES: Dict[str, tuple] = {
    'ti': ('detection/mmdet/models/backbones/lit_ti.py', 'LIT_Ti'),
    'smb': ('detection/mmdet/models/backbones/lit.py', 'LIT'),
    'litv2': ('detection/mmdet/models/backbones/litv2.py', 'LITv2'),
}
REPOSITORIES = {'ti': 'zhuang-group/LIT', 'smb': 'zhuang-group/LIT', 'litv2': 'ziplab/LITv2'}


class DeformConv2dPack(nn.Module):
    """Stand-in for the official ``mm_modules.DCN.modules.deform_conv2d.DeformConv2dPack``: a deformable
    convolution whose offsets come from ``conv_offset`` (initialised to zero), with a bias, computed by
    ``mmcv.ops.deform_conv2d``. Parameter names are the official ones, so official checkpoints load.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int | tuple): Kernel size.
        stride (int | tuple): Stride.
        padding (int | tuple): Zero padding.
        dilation (int | tuple): Dilation. Defaults to 1.
        groups (int): Convolution groups. Defaults to 1.
        deformable_groups (int): Offset groups. Defaults to 1.
        im2col_step (int): Unused (a setting of the CUDA kernel). Defaults to 64.
        bias (bool): Whether to add a bias. Defaults to True.
        lr_mult (float): Unused (a training setting). Defaults to 0.1.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation=1, groups=1,
                 deformable_groups=1, im2col_step=64, bias=True, lr_mult=0.1):
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.deformable_groups = groups, deformable_groups
        kh, kw = _pair(kernel_size)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.conv_offset = nn.Conv2d(in_channels, deformable_groups * 2 * kh * kw, (kh, kw), stride, padding)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def deform_conv(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Deformable convolution of ``x`` (B, C, H, W) at ``offset``, plus the bias."""
        from mmcv.ops import deform_conv2d
        out = deform_conv2d(x, offset, self.weight, self.stride, self.padding, self.dilation, self.groups,
                            self.deformable_groups)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deformable convolution of ``x`` (B, C, H, W) at the offsets predicted from ``x``."""
        return self.deform_conv(x, self.conv_offset(x))


class DeformConv2dPackWithOffset(DeformConv2dPack):
    """The same stand-in for zhuang-group/LIT's ``DeformConv2dPack``, whose forward also returns the
    offsets: ``(out, offset)``."""

    def forward(self, x: torch.Tensor, return_offset: bool = False):
        """``(out, offset)`` for ``x`` (B, C, H, W); ``return_offset`` is accepted and ignored, as there."""
        offset = self.conv_offset(x)
        return self.deform_conv(x, offset), offset


class _NoRegistry:
    """A registry whose ``register_module`` leaves the class unregistered (and usable)."""

    def register_module(self, *args, **kwargs):
        """Decorator form (``@register_module()``) or direct form (``@register_module``)."""
        if len(args) == 1 and isinstance(args[0], type) and not kwargs:
            return args[0]
        return lambda cls: cls


def _no_checkpoint(*args, **kwargs):
    """Stand-in for the old checkpoint loaders, which building without ``pretrained`` never calls."""
    raise RuntimeError('build_official builds official backbones without `pretrained`; give weights with '
                       '`weights_from=` (an mmlit backbone) instead')


def _root_logger(*args, **kwargs):
    """Stand-in for mmdet 2.x's ``get_root_logger``: MMEngine's current logger."""
    from mmengine.logging import MMLogger
    return MMLogger.get_current_instance()


def _standins(dcn: type) -> Dict[str, types.ModuleType]:
    """The stand-in modules by the name the official file imports them as (``dcn``: the DCN class)."""
    registry = _NoRegistry()
    contents = {
        'mm_modules.DCN.modules.deform_conv2d': dict(DeformConv2dPack=dcn),
        'mmcv_custom': dict(load_checkpoint=_no_checkpoint),
        'mmcv.runner': dict(load_checkpoint=_no_checkpoint),
        'mmdet.utils': dict(get_root_logger=_root_logger),
        'mmdet.models.builder': dict(BACKBONES=registry),
        '..builder': dict(BACKBONES=registry),
        'mmdet.registry': dict(MODELS=registry),
    }
    modules = {}
    for name, attrs in contents.items():
        module = types.ModuleType(f'mmlit_standin:{name}')
        module.__dict__.update(attrs)
        modules[name] = module
    return modules


def load_official_file(path: str, dcn: type = DeformConv2dPack) -> types.ModuleType:
    """Import the official model file ``path`` as a private module, with the stand-ins of the module doc in
    place of its imports of the CUDA DCN (``dcn``: :class:`DeformConv2dPack` for ziplab/LITv2,
    :class:`DeformConv2dPackWithOffset` for zhuang-group/LIT) and of old mmdet/mmcv helpers. Other imports
    are the real ones (``timm`` must be installed)."""
    standins = _standins(dcn)
    real_import = builtins.__import__

    def _import(name, globals=None, locals=None, fromlist=(), level=0):
        key = '.' * level + name
        if key in standins and fromlist:
            return standins[key]
        if level:
            raise ImportError(f'{path} imports {key!r}, which build_official has no stand-in for')
        return real_import(name, globals, locals, fromlist, level)

    module = types.ModuleType(f'mmlit_official_{osp.splitext(osp.basename(path))[0]}')
    module.__file__ = path
    module.__builtins__ = dict(vars(builtins), __import__=_import)
    with open(path) as f:
        code = compile(f.read(), path, 'exec')
    try:
        exec(code, module.__dict__)
    except ModuleNotFoundError as err:
        hint = ' (pip install timm)' if err.name and err.name.startswith('timm') else ''
        raise ModuleNotFoundError(f'The official code in {path} needs {err.name!r}{hint}', name=err.name) from err
    return module


def family_of(target: str) -> str:
    """Which official code ``target`` (an mmlit arch name: ``ti``, ``s``, ``litv2-m``, ...) corresponds to:
    ``'ti'`` (LIT-Ti), ``'smb'`` (LIT-S/M/B) or ``'litv2'``."""
    from mmlit.models.backbones import LITv2, resolve_arch
    cls, arch = resolve_arch(target)
    if cls is LITv2:
        return 'litv2'
    return 'ti' if arch in ('ti', 'tiny') else 'smb'


def find_checkout(target: str, checkouts: Sequence[str]) -> Optional[str]:
    """The first of ``checkouts`` that holds the official backbone file of ``target``, or None."""
    rel = OFFICIAL_BACKBONES[family_of(target)][0]
    for checkout in checkouts:
        if osp.isfile(osp.join(osp.expanduser(checkout), rel)):
            return osp.expanduser(checkout)
    return None


def _official_kwargs(family: str, arch: dict) -> dict:
    """Constructor arguments of the official backbone of ``family`` for the mmlit ``arch`` dict (the
    official detection configs' settings; drop path off, as in eval)."""
    if family == 'ti':
        return {}  # LIT_Ti fixes its settings
    kwargs = dict(embed_dim=arch['embed_dims'][0], depths=list(arch['depths']), num_heads=list(arch['num_heads']),
                  mlp_ratio=float(arch['mlp_ratios'][0]), patch_norm=True, drop_path_rate=0.,
                  has_msa=[int(i in arch['msa_stages']) for i in range(4)])
    if family == 'litv2':
        kwargs.update(alpha=arch['alpha'], local_ws=list(arch['local_ws']))
    else:
        kwargs.update(window_size=7, ape=False)
    return kwargs


def _adopt_bias_tables(model: nn.Module, state_dict: dict) -> None:
    """zhuang-group/LIT's detection backbone sizes its relative position bias tables for 800x800 inputs
    (its checkpoint loader resizes the ImageNet tables to that), and resizes them to each input's size in
    its forward. To compute mmlit's function, each attention takes mmlit's table as it is, with its
    ``window_size`` (the grid the forward resizes from) set to match."""
    own = model.state_dict()
    for key, value in state_dict.items():
        if key.endswith('relative_position_bias_table') and key in own and own[key].shape != value.shape:
            module = model.get_submodule(key.rsplit('.', 1)[0])
            side = (math.isqrt(value.shape[0]) + 1) // 2
            module.relative_position_bias_table = nn.Parameter(value.clone())
            module.window_size = (side, side)
            module.table_len = value.shape[0]


def build_official(checkout: str, target: str, weights_from: Optional[nn.Module] = None) -> nn.Module:
    """The official detection backbone for the mmlit arch ``target``, built from ``checkout``.

    Args:
        checkout (str): A checkout of github.com/zhuang-group/LIT (for ``ti``, ``s``, ``m``, ``b``) or of
            github.com/ziplab/LITv2 (for ``litv2-s``, ``litv2-m``, ``litv2-b``).
        target (str): The mmlit arch name.
        weights_from (nn.Module, optional): An mmlit backbone of that arch whose weights the official model
            takes (through :func:`mmlit.models.utils.mmlit_to_lit`). Every official parameter must come
            from it.

    Returns:
        nn.Module: The official backbone in eval mode; its forward returns the four stage outputs.
    """
    from mmlit.models.backbones import resolve_arch
    family = family_of(target)
    rel, cls_name = OFFICIAL_BACKBONES[family]
    path = osp.join(osp.expanduser(checkout), rel)
    if not osp.isfile(path):
        raise FileNotFoundError(f'No {rel} in {checkout}: give a checkout of github.com/{REPOSITORIES[family]} '
                                f'for {target!r}')
    cls, name = resolve_arch(target)
    arch = cls._parse_arch(name)
    dcn = DeformConv2dPack if family == 'litv2' else DeformConv2dPackWithOffset
    model = getattr(load_official_file(path, dcn), cls_name)(**_official_kwargs(family, arch))
    if weights_from is not None:
        from mmlit.models.utils import mmlit_to_lit
        state_dict = mmlit_to_lit(weights_from.state_dict(), layout=family)
        _adopt_bias_tables(model, state_dict)
        missing, _ = model.load_state_dict(state_dict, strict=False)
        params = dict(model.named_parameters())
        missing = [k for k in missing if k in params]
        if missing:
            raise KeyError(f'The mmlit weights leave official parameters unset: {missing[:8]}')
    model.eval()  # (the official train() returns None)
    return model

