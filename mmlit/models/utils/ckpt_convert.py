"""Conversion between the official LIT checkpoint layouts and mmlit's.

Official layouts (github.com/zhuang-group/LIT):

- LIT-Ti (``classification/code_for_lit_ti/lit.py``, ``detection|segmentation/.../lit_ti.py``):
  ``patch_embed1.proj|norm``, ``patch_embed{2,3,4}.dconv[.conv_offset]`` / ``.norm_layer`` (DTM),
  ``pos_embed{1..4}``, ``block{1..4}.{j}.(norm1|attn|norm2|mlp.fc1|mlp.fc2)``, ``cls_token``, ``norm``,
  ``head``.
- LIT-S/M/B (``classification/code_for_lit_s_m_b/models``, ``detection|segmentation/.../lit.py``):
  ``patch_embed.proj|norm``, ``layers.{i}.blocks.{j}...`` (``attn.relative_position_bias_table``,
  ``attn.relative_position_index``), ``layers.{i}.downsample.dconv|norm_layer`` (DTM at the end of
  stage i), ``norm`` (classifier) or ``norm{i}`` (dense outputs), ``head``.

- LITv2 (github.com/ziplab/LITv2, ``classification/models``, ``detection|segmentation/.../litv2.py``): the
  LIT-S/M/B layout, with HiLo attention ``attn.(l_q|l_kv|l_proj|h_qkv|h_proj)`` and the MLP's depthwise
  conv ``mlp.dwconv.dwconv``; no relative position tables.

mmlit: ``patch_embed.projection|norm``, ``stages.{i}.downsample.(conv|conv_offset|norm)`` (DTM at the
start of stage i), ``stages.{i}.pos_embed.pos_embed``, ``stages.{i}.blocks.{j}.(norm|ffn)`` (MLP blocks)
or ``.(norm1|attn|norm2|ffn)`` (attention blocks), ``cls_token``, ``norm{i}``; a classifier's head is
``head.fc`` (mmpretrain ``LinearClsHead``).

Task checkpoints (official ``detection/``: mmdet 2.11; ``segmentation/``: mmseg 0.13) against mmdet 3.x /
mmseg 1.x with mmlit's configs:

- Backbone: renamed as above. The detection LIT-Ti has no ``cls_token`` and no ``norm``, but keeps the
  class-token row of ``pos_embed4`` (50 rows at 224px), as mmlit's dense LIT-Ti does. The detection LIT-S
  sizes its relative position tables for 800px inputs (stage 3: 99x99 offsets, stage 4: 49x49), the
  segmentation LIT-S for 512px (63x63, 31x31), ImageNet for 224px (27x27, 13x13): mmlit's configs set
  ``pretrain_img_size`` to match, and any other size is resized on load. Output norms: detection LIT-S
  ``norm1..3``, segmentation LIT-S ``norm0..3``, LIT-Ti none. ``relative_position_index`` buffers are
  dropped (derived from the input size).
- Necks and heads (FPN, RPNHead, RetinaHead, Shared2FCBBoxHead, FCNMaskHead; mmseg FPNHead): parameter
  names and shapes are the same in mmdet 2.11 / 3.x and mmseg 0.13 / 1.x, so they are kept as they are.
- Metadata: mmdet 2.x / mmseg 0.x store ``meta['CLASSES']`` (and ``meta['PALETTE']``); MMEngine-based
  inferencers read ``meta['dataset_meta']``. Optimizer state and the old config text are dropped.
"""
import functools
import re
from collections import OrderedDict
from typing import Callable, Dict, Mapping, Optional

import torch

# within a block: official suffix -> mmlit suffix
_BLOCK_RENAMES = (('mlp.fc1.', 'ffn.fc1.'), ('mlp.fc2.', 'ffn.fc2.'))
# within a DTM: official suffix -> mmlit suffix
_DTM_RENAMES = (('dconv.conv_offset.', 'conv_offset.'), ('dconv.', 'conv.'), ('norm_layer.', 'norm.'))
# within a LITv2 block: official suffix -> mmlit suffix (Mlp with its depthwise conv, HiLoAttention)
_V2_BLOCK_RENAMES = (('mlp.fc1.', 'ffn.fc1.'), ('mlp.dwconv.dwconv.', 'ffn.dwconv.'), ('mlp.fc2.', 'ffn.fc2.'),
                     ('attn.l_q.', 'attn.lo_q.'), ('attn.l_kv.', 'attn.lo_kv.'), ('attn.l_proj.', 'attn.lo_proj.'),
                     ('attn.h_qkv.', 'attn.hi_qkv.'), ('attn.h_proj.', 'attn.hi_proj.'))
_DROPPED = ('relative_position_index', )  # recomputed for every input size


def _rename(suffix: str, renames) -> str:
    """Replace the first of the ``(old, new)`` prefixes of ``renames`` that starts ``suffix``.

    Args:
        suffix (str): A parameter name, or its tail.
        renames (Sequence[tuple[str, str]]): (old prefix, new prefix) pairs, tried in order.

    Returns:
        str: The renamed suffix; ``suffix`` itself when no prefix matches.
    """
    for old, new in renames:
        if suffix.startswith(old):
            return new + suffix[len(old):]
    return suffix


def _block_suffix_to_mmlit(suffix: str, is_mlp_block: bool, renames=_BLOCK_RENAMES) -> str:
    """mmlit name of a key inside one official block: ``mlp.fc1`` / ``mlp.fc2`` -> ``ffn.fc1`` /
    ``ffn.fc2`` (LITv2: ``renames=_V2_BLOCK_RENAMES``), and in an MLP-only block (one norm in mmlit)
    ``norm2`` -> ``norm``."""
    suffix = _rename(suffix, renames)
    if is_mlp_block and suffix.startswith('norm2.'):
        suffix = 'norm.' + suffix[len('norm2.'):]
    return suffix


def _block_suffix_to_lit(suffix: str, renames=_BLOCK_RENAMES) -> str:
    """The inverse of :func:`_block_suffix_to_mmlit`: ``ffn.fc*`` -> ``mlp.fc*``, an MLP block's
    ``norm`` -> ``norm2``."""
    suffix = _rename(suffix, [(new, old) for old, new in renames])
    if suffix.startswith('norm.'):  # mmlit MLP block norm
        suffix = 'norm2.' + suffix[len('norm.'):]
    return suffix


def _mlp_blocks(state_dict: Mapping[str, torch.Tensor], block_re: str) -> set:
    """(stage, block) pairs of blocks without attention."""
    blocks, with_attn = set(), set()
    for key in state_dict:
        m = re.match(block_re, key)
        if m:
            blocks.add(m.groups()[:2])
            if m.group(3).startswith('attn.'):
                with_attn.add(m.groups()[:2])
    return blocks - with_attn


def _convert_ti_key(key: str, mlp_blocks: set) -> str:
    """mmlit name of a backbone key of an official LIT-Ti checkpoint (layouts in the module doc).

    The official 1-based ``patch_embed{i}`` / ``pos_embed{i}`` / ``block{i}`` become stage ``i - 1``;
    ``patch_embed1`` is the patch embedding, ``patch_embed{2,3,4}`` the DTMs; ``norm`` becomes ``norm3``.

    Args:
        key (str): The key, without a ``backbone.`` prefix.
        mlp_blocks (set): (stage, block) pairs, as strings, of the MLP-only blocks (:func:`_mlp_blocks`).

    Returns:
        str: The mmlit key.

    Raises:
        KeyError: A key of no LIT-Ti parameter.
    """
    rules = (
        (r'patch_embed1\.proj\.(.*)', lambda m: f'patch_embed.projection.{m[1]}'),
        (r'patch_embed1\.norm\.(.*)', lambda m: f'patch_embed.norm.{m[1]}'),
        (r'patch_embed(\d)\.(.*)',
         lambda m: f'stages.{int(m[1]) - 1}.downsample.{_rename(m[2], _DTM_RENAMES)}'),
        (r'pos_embed(\d)$', lambda m: f'stages.{int(m[1]) - 1}.pos_embed.pos_embed'),
        (r'block(\d)\.(\d+)\.(.*)', lambda m: f'stages.{int(m[1]) - 1}.blocks.{m[2]}.'
         f'{_block_suffix_to_mmlit(m[3], (m[1], m[2]) in mlp_blocks)}'),
        (r'norm\.(.*)', lambda m: f'norm3.{m[1]}'),
        (r'(cls_token)$', lambda m: m[1]),
    )
    return _apply_rules(key, rules, 'LIT-Ti')


def _convert_smb_key(key: str, mlp_blocks: set, renames=_BLOCK_RENAMES, layout: str = 'LIT-S/M/B') -> str:
    """mmlit name of a backbone key of an official LIT-S/M/B checkpoint (layouts in the module doc).

    ``layers.{i}.blocks.{j}`` become ``stages.{i}.blocks.{j}``; the DTM at the end of official stage i,
    ``layers.{i}.downsample``, starts mmlit's stage i + 1; ``norm`` becomes ``norm3``, ``norm{i}`` stays.

    Args:
        key (str): The key, without a ``backbone.`` prefix.
        mlp_blocks (set): (stage, block) pairs, as strings, of the MLP-only blocks (:func:`_mlp_blocks`).
        renames (Sequence[tuple[str, str]]): The block renames (:data:`_V2_BLOCK_RENAMES` for LITv2).
        layout (str): The layout's name, for the error message.

    Returns:
        str: The mmlit key.

    Raises:
        KeyError: A key of no LIT-S/M/B (LITv2) parameter.
    """
    rules = (
        (r'patch_embed\.proj\.(.*)', lambda m: f'patch_embed.projection.{m[1]}'),
        (r'patch_embed\.norm\.(.*)', lambda m: f'patch_embed.norm.{m[1]}'),
        (r'layers\.(\d)\.blocks\.(\d+)\.(.*)', lambda m: f'stages.{m[1]}.blocks.{m[2]}.'
         f'{_block_suffix_to_mmlit(m[3], (m[1], m[2]) in mlp_blocks, renames)}'),
        (r'layers\.(\d)\.downsample\.(.*)',
         lambda m: f'stages.{int(m[1]) + 1}.downsample.{_rename(m[2], _DTM_RENAMES)}'),
        (r'norm\.(.*)', lambda m: f'norm3.{m[1]}'),
        (r'(norm\d\..*)', lambda m: m[1]),
    )
    return _apply_rules(key, rules, layout)


def _apply_rules(key: str, rules, layout: str) -> str:
    """Convert ``key`` with the first rule whose pattern matches all of it.

    Args:
        key (str): The key to convert.
        rules (Sequence[tuple[str, Callable]]): (regex, function of the match giving the new key) pairs.
        layout (str): The layout's name, for the error message.

    Returns:
        str: The new key.

    Raises:
        KeyError: No rule matches.
    """
    for pattern, repl in rules:
        m = re.fullmatch(pattern, key)
        if m:
            return repl(m)
    raise KeyError(f'Unrecognised key {key!r} in a {layout} checkpoint of the official layout; '
                   f'mmlit cannot convert it. Is this a LIT checkpoint?')


def detect_layout(backbone_keys) -> str:
    """'ti' (official LIT-Ti), 'smb' (official LIT-S/M/B), 'litv2' (official LITv2) or 'mmlit'."""
    keys = list(backbone_keys)
    if any(k.startswith('stages.') for k in keys):
        return 'mmlit'
    if any(k.startswith(('patch_embed1.', 'block1.')) for k in keys):
        return 'ti'
    if any(k.startswith('layers.') and '.mlp.dwconv.' in k for k in keys):
        return 'litv2'
    if any(k.startswith('layers.') for k in keys):
        return 'smb'
    raise ValueError('This is not a LIT checkpoint: found neither the official LIT-Ti keys '
                     '(patch_embed1., block1.), nor the LIT-S/M/B or LITv2 keys (layers.), nor mmlit keys '
                     '(stages.)')


def unwrap_state_dict(checkpoint: Mapping) -> Dict[str, torch.Tensor]:
    """The state dict of a checkpoint saved bare or under ``state_dict`` / ``model``."""
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            return dict(checkpoint[key])
    return dict(checkpoint)


def _split(state_dict: Mapping[str, torch.Tensor]):
    """(backbone dict without prefix, other entries with their full keys, classifier head dict)."""
    if any(k.startswith('backbone.') for k in state_dict):
        backbone = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
        others = {k: v for k, v in state_dict.items() if not k.startswith('backbone.')}
        return backbone, others, {}
    head = {k: v for k, v in state_dict.items() if k.startswith('head.')}
    backbone = {k: v for k, v in state_dict.items() if not k.startswith('head.')}
    return backbone, {}, head


def lit_to_mmlit(checkpoint: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """Convert an official LIT checkpoint to mmlit's layout.

    Args:
        checkpoint (dict): A bare state dict, or a checkpoint holding one under ``model`` (official
            classification code) or ``state_dict`` (mmdet/mmseg); backbone keys with or without the
            ``backbone.`` prefix. Checkpoints already in mmlit's layout pass through unchanged.

    Returns:
        OrderedDict: A model state dict: backbone weights under ``backbone.``; a classification
        checkpoint's ``head.*`` as ``head.fc.*`` (mmpretrain ``ImageClassifier`` + ``LinearClsHead``);
        every other entry of a detection/segmentation checkpoint (neck, heads) unchanged.
    """
    state_dict = unwrap_state_dict(checkpoint)
    backbone, others, head = _split(state_dict)
    layout = detect_layout(backbone)
    if layout == 'mmlit':
        converted = backbone
    else:
        block_re = r'block(\d)\.(\d+)\.(.*)' if layout == 'ti' else r'layers\.(\d)\.blocks\.(\d+)\.(.*)'
        mlp_blocks = _mlp_blocks(backbone, block_re)
        convert_key: Callable = {
            'ti': _convert_ti_key,
            'smb': _convert_smb_key,
            'litv2': functools.partial(_convert_smb_key, renames=_V2_BLOCK_RENAMES, layout='LITv2'),
        }[layout]
        converted = {}
        for key, value in backbone.items():
            if key.endswith(_DROPPED):
                continue
            if key.startswith('absolute_pos_embed'):
                raise KeyError('This LIT-S/M/B checkpoint uses an absolute position embedding (ape=True), '
                               'which neither the official models nor mmlit use.')
            converted[convert_key(key, mlp_blocks)] = value
    out = OrderedDict((f'backbone.{k}', v) for k, v in converted.items())
    for key, value in head.items():
        out[key if key.startswith('head.fc.') else 'head.fc.' + key[len('head.'):]] = value
    out.update(others)
    return out


def convert_meta(meta: Optional[Mapping]) -> dict:
    """mmdet 2.x / mmseg 0.x checkpoint metadata -> MMEngine's (``dataset_meta`` with ``classes``,
    ``palette``); the producing library's version is kept as ``source_version``."""
    meta = meta or {}
    out = {}
    classes = meta.get('CLASSES')
    if classes is not None:
        dataset_meta = dict(classes=tuple(classes))
        if meta.get('PALETTE') is not None:
            dataset_meta['palette'] = [tuple(int(c) for c in color) for color in meta['PALETTE']]
        out['dataset_meta'] = dataset_meta
    elif isinstance(meta.get('dataset_meta'), Mapping):
        out['dataset_meta'] = dict(meta['dataset_meta'])
    versions = [f'{k[:-len("_version")]} {v}' for k, v in meta.items() if k.endswith('_version')]
    if versions:
        out['source_version'] = ', '.join(sorted(versions))
    return out


def convert_checkpoint(checkpoint: Mapping) -> dict:
    """A whole official checkpoint (ImageNet, mmdet 2.11 or mmseg 0.13) -> an MMEngine checkpoint
    ``dict(state_dict=..., meta=...)`` that mmlit's configs load strictly; optimizer state is dropped and
    ``meta['source_layout']`` says which layout was read (``'ti'``, ``'smb'``, ``'litv2'`` or ``'mmlit'``)."""
    meta = convert_meta(checkpoint.get('meta') if isinstance(checkpoint.get('meta'), Mapping) else None)
    meta['source_layout'] = detect_layout(_split(unwrap_state_dict(checkpoint))[0])
    return dict(state_dict=lit_to_mmlit(checkpoint), meta=meta)


def mmlit_to_lit(state_dict: Mapping[str, torch.Tensor],
                 layout: str,
                 classifier: bool = False) -> 'OrderedDict[str, torch.Tensor]':
    """The inverse of :func:`lit_to_mmlit` for a backbone state dict (no prefix).

    ``layout`` is ``'ti'``, ``'smb'`` or ``'litv2'``; with ``classifier=True`` the last stage's norm becomes the
    classifier's final ``norm``. Relative position indices are not recreated (mmlit derives them
    from the input size). Useful to hand weights back to the official code and to test the converter.
    """
    if layout not in ('ti', 'smb', 'litv2'):
        raise ValueError(f"layout must be 'ti', 'smb' or 'litv2', got {layout!r}")
    renames = _V2_BLOCK_RENAMES if layout == 'litv2' else _BLOCK_RENAMES
    out = OrderedDict()
    for key, value in state_dict.items():
        m = re.fullmatch(r'stages\.(\d)\.(blocks\.(\d+)\.|downsample\.|pos_embed\.pos_embed)(.*)', key)
        if m is None:
            if key.startswith('patch_embed.'):
                new = key.replace('patch_embed.projection.', 'patch_embed.proj.')
                if layout == 'ti':
                    new = new.replace('patch_embed.', 'patch_embed1.')
            elif key.startswith('norm3.') and classifier:
                new = 'norm.' + key[len('norm3.'):]
            else:
                new = key  # cls_token, norm{i}
            out[new] = value
            continue
        stage, part, block, rest = int(m[1]), m[2], m[3], m[4]
        if part == 'downsample.':
            rest = _rename(rest, [(new, old) for old, new in reversed(_DTM_RENAMES)])
            out[f'patch_embed{stage + 1}.{rest}' if layout == 'ti' else
                f'layers.{stage - 1}.downsample.{rest}'] = value
        elif part == 'pos_embed.pos_embed':
            out[f'pos_embed{stage + 1}'] = value
        else:
            rest = _block_suffix_to_lit(rest, renames)
            out[f'block{stage + 1}.{block}.{rest}' if layout == 'ti' else
                f'layers.{stage}.blocks.{block}.{rest}'] = value
    return out


# entries resized to the model's size on load (position embeddings, relative position bias tables): they
# fit when their channels / heads (the last dim) do
_RESIZED = ('pos_embed', 'relative_position_bias_table')


def tensor_fits(key: str, value: torch.Tensor, own: torch.Tensor) -> bool:
    """Whether a checkpoint's ``value`` loads into the model's tensor ``own`` of the same ``key``."""
    if any(name in key for name in _RESIZED):
        return value.dim() == own.dim() and value.shape[-1:] == own.shape[-1:]
    return value.shape == own.shape


def guess_arch(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The arch of ``mmlit.LIT`` / ``mmlit.LITv2`` whose backbone a state dict holds, if any.

    Args:
        state_dict (dict): Backbone weights without a prefix, in mmlit's layout or an official one.

    Returns:
        str | None: e.g. ``"mmlit.LIT arch='s'"`` (with a hint to convert official weights), or None when
        no arch has 90% of its tensors in ``state_dict`` with their shape.
    """
    from ..backbones import LIT, LITv2
    hint = ''
    try:
        if detect_layout(state_dict) != 'mmlit':
            state_dict = {k[len('backbone.'):]: v for k, v in lit_to_mmlit(state_dict).items()
                          if k.startswith('backbone.')}
            hint = ' in the official layout (convert_weights=True converts it)'
    except (KeyError, ValueError):
        return None
    best, best_score = None, 0.9
    for cls in (LIT, LITv2):
        seen = set()
        for name, settings in cls.arch_zoo.items():
            if id(settings) in seen:
                continue
            seen.add(id(settings))
            with torch.device('meta'):  # shapes only
                own = cls(arch=name).state_dict()
            score = sum(k in state_dict and tensor_fits(k, state_dict[k], v) for k, v in own.items()) / len(own)
            if score > best_score:
                best, best_score = f'mmlit.{cls.__name__} arch={name!r}{hint}', score
    return best


def check_fits(own: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor], source: str,
               target: str, backbone_prefix: str = '',
               fix: str = 'Pass the checkpoint of this model, or the config of this checkpoint.') -> None:
    """Refuse ``state_dict`` when fewer than half of the tensors ``own`` holds are in it with their shape.

    Args:
        own (dict): The state dict of the model the weights are for.
        state_dict (dict): The checkpoint's weights, with the model's key names.
        source (str): The checkpoint, for the message.
        target (str): The model, for the message (e.g. ``'this LIT backbone'``).
        backbone_prefix (str): Where the LIT backbone's weights are in ``state_dict`` (for the arch guess).
        fix (str): What to do, for the message.

    Raises:
        CheckpointError: Naming what did not match, and the arch of LIT the checkpoint looks like.
    """
    from ...utils.safe_checkpoint import CheckpointError
    fits = [k for k, v in own.items() if k in state_dict and tensor_fits(k, state_dict[k], v)]
    if 2 * len(fits) >= len(own):
        return
    missing = [k for k in own if k not in state_dict]
    shapes = [f'{k}: {tuple(state_dict[k].shape)} in the checkpoint, {tuple(own[k].shape)} here'
              for k in own if k in state_dict and k not in fits]
    backbone = {k[len(backbone_prefix):]: v for k, v in state_dict.items() if k.startswith(backbone_prefix)}
    guess = guess_arch(backbone) if backbone else None
    looks = f'its backbone looks like {guess}' if guess else 'its weights match no arch of mmlit.LIT or mmlit.LITv2'
    raise CheckpointError(
        f'{source} does not fit {target}: only {len(fits)} of its {len(own)} tensors are in the checkpoint with '
        f'their shape ({len(missing)} missing, e.g. {missing[:2]}; {len(shapes)} of another shape, e.g. '
        f'{shapes[:2]}); {looks}. {fix}')
