"""The backbones of the LIT family: :class:`LIT` ("Less is More: Pay Less Attention in Vision
Transformers", AAAI 2022) and :class:`LITv2` ("Fast Vision Transformers with HiLo Attention", NeurIPS 2022),
siblings over :class:`LITBase`, and their stage, :class:`LITStage`.

What they share (:class:`LITBase`): patch embedding, four stages with deformable token merging, the output
norms and modes, the arch parsing, loading of official checkpoints converted on the fly, and stage
freezing. Each backbone adds its arch zoo and what its stages hold: LIT-Ti's absolute position embeddings
and class token, LIT-S/M/B's relative position bias tables, LITv2's HiLo attention and depthwise conv.
"""
import copy
import re
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.logging import MMLogger
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict
from torch.nn.modules.batchnorm import _BatchNorm

from mmlit.registry import MODELS

from ...utils.safe_checkpoint import CheckpointError
from ..fast_path import set_fast_path
from ..layers import AbsolutePositionEmbedding, DeformableTokenMerging, MLPBlock, MSABlock
from ..utils.ckpt_convert import check_fits, lit_to_mmlit

# The widths, depths, heads and MLP ratios of LIT-S/M/B, which LITv2-S/M/B share.
SMB_ARCHS: Dict[str, dict] = {
    **dict.fromkeys(['s', 'small'], {
        'embed_dims': [96, 192, 384, 768],
        'depths': [2, 2, 6, 2],
        'num_heads': [3, 6, 12, 24],
        'mlp_ratios': [4, 4, 4, 4],
    }),
    **dict.fromkeys(['m', 'medium'], {
        'embed_dims': [96, 192, 384, 768],
        'depths': [2, 2, 18, 2],
        'num_heads': [3, 6, 12, 24],
        'mlp_ratios': [4, 4, 4, 4],
    }),
    **dict.fromkeys(['b', 'base'], {
        'embed_dims': [128, 256, 512, 1024],
        'depths': [2, 2, 18, 2],
        'num_heads': [4, 8, 16, 32],
        'mlp_ratios': [4, 4, 4, 4],
    }),
}


class LITStage(BaseModule):
    """One stage of LIT: optional deformable token merging from the previous stage, optional absolute
    position embedding, then ``depth`` MLP-only or global self-attention blocks.

    Tokens travel as (B, N, C) with their grid size (H, W) beside them.

    Args:
        in_channels (int): Channels of the previous stage (ignored without ``downsample``).
        embed_dims (int): Channels of this stage.
        depth (int): Number of blocks.
        num_heads (int): Attention heads (MSA stages only).
        mlp_ratio (float): Hidden/embed ratio of the MLPs.
        use_msa (bool): Global self-attention blocks instead of MLP-only blocks.
        downsample (bool): Start with a deformable token merging (stride 2).
        qkv_bias (bool): Bias in the qkv projections. Defaults to True.
        pos_embed_shape (tuple[int], optional): Token grid of an absolute position embedding.
        num_extra_tokens (int): Slots for extra tokens (class token) in the position embedding.
        rel_pos_shape (tuple[int], optional): Token grid of the relative position bias tables.
        drop_rate (float): Dropout rate (position embedding, MLPs, attention output). Defaults to 0.
        attn_drop_rate (float): Dropout on the attention weights. Defaults to 0.
        drop_path_rates (Sequence[float]): Stochastic depth rate per block; empty for none.
        norm_cfg (dict): Normalisation in the blocks. Defaults to ``dict(type='LN')``.
        dtm_norm_cfg (dict): Normalisation in the deformable token merging. Defaults to ``dict(type='BN')``.
        with_cp (bool): Gradient checkpointing per block.
        hilo (dict, optional): HiLo attention (``window_size``, ``alpha``) instead of global attention in
            the MSA blocks (LITv2). Defaults to None.
        dw_conv (bool): MLPs with a depthwise 3x3 conv (LITv2). Defaults to False.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 depth: int,
                 num_heads: int,
                 mlp_ratio: float,
                 use_msa: bool,
                 downsample: bool,
                 qkv_bias: bool = True,
                 pos_embed_shape: Optional[Sequence[int]] = None,
                 num_extra_tokens: int = 0,
                 rel_pos_shape: Optional[Sequence[int]] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rates: Sequence[float] = (),
                 norm_cfg: dict = dict(type='LN'),
                 dtm_norm_cfg: dict = dict(type='BN'),
                 with_cp: bool = False,
                 hilo: Optional[dict] = None,
                 dw_conv: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.downsample = DeformableTokenMerging(
            in_channels, embed_dims, norm_cfg=dtm_norm_cfg) if downsample else None
        self.pos_embed = AbsolutePositionEmbedding(
            embed_dims, pos_embed_shape, num_extra_tokens,
            drop_rate=drop_rate) if pos_embed_shape is not None else None
        drop_path_rates = list(drop_path_rates) or [0.] * depth
        if use_msa:
            blocks = [
                MSABlock(embed_dims, num_heads, mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                         attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rates[i],
                         rel_pos_shape=rel_pos_shape, norm_cfg=norm_cfg, hilo=hilo, dw_conv=dw_conv)
                for i in range(depth)
            ]
        else:
            blocks = [
                MLPBlock(embed_dims, mlp_ratio, drop_rate=drop_rate, drop_path_rate=drop_path_rates[i],
                         norm_cfg=norm_cfg, dw_conv=dw_conv) for i in range(depth)
            ]
        self.blocks = ModuleList(blocks)

    def forward(self,
                x: torch.Tensor,
                hw: Tuple[int, int],
                extra_tokens: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Run the stage on tokens ``x`` (B, H*W, C) of grid ``hw``.

        ``extra_tokens`` (B, n, C') are put in front of the merged tokens (class token of LIT-Ti).

        Returns:
            tuple: the tokens (B, n + H'*W', C') and their grid (H', W').
        """
        if self.downsample is not None:
            B, _, C = x.shape
            x = self.downsample(x.transpose(1, 2).reshape(B, C, *hw))
            hw = tuple(x.shape[-2:])
            x = x.flatten(2).transpose(1, 2)
        if extra_tokens is not None:
            x = torch.cat((extra_tokens, x), dim=1)
        if self.pos_embed is not None:
            x = self.pos_embed(x, hw)
        for block in self.blocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, hw, use_reentrant=False)
            else:
                x = block(x, hw)
        return x, hw


class LITBase(BaseModule):
    """The backbone of the LIT family, less what varies: the subclasses (:class:`~mmlit.models.LIT`,
    :class:`~mmlit.models.LITv2`) give :attr:`arch_zoo`, :attr:`arch_defaults` and :meth:`_stage_options`.
    The arguments are :class:`~mmlit.models.LIT`'s; see there."""

    # What varies between the archs (name -> settings), and the design's settings an arch may change.
    arch_zoo: Dict[str, dict] = {}
    arch_defaults: dict = {}
    arch_required = ('embed_dims', 'depths', 'num_heads', 'mlp_ratios')
    num_stages = 4
    patch_size = 4
    OUT_TYPES = ('featmap', 'avg_featmap')

    def __init__(self,
                 arch: Union[str, dict],
                 in_channels: int = 3,
                 pretrain_img_size: Union[int, Sequence[int]] = 224,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_type: str = 'featmap',
                 out_norm_indices: Optional[Sequence[int]] = None,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 dtm_norm_cfg: dict = dict(type='BN'),
                 fast_path: bool = True,
                 convert_weights: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = arch = self._parse_arch(arch)
        self.embed_dims = list(arch['embed_dims'])
        self.num_features = self.embed_dims  # the name mmdet/mmseg users know
        self.out_indices = self._parse_indices(out_indices, 'out_indices')
        self._check_out_type(out_type)
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'Unsupported out_type {out_type!r}; choose one of {self.OUT_TYPES}')
        if out_type != 'featmap' and self.num_stages - 1 not in self.out_indices:
            raise ValueError(f'out_type={out_type!r} pools the last stage: out_indices must contain 3 '
                             f'(or -1), got {tuple(out_indices)}')
        self.out_type = out_type
        if out_norm_indices is None:
            out_norm_indices = arch['out_norm_indices'] if out_type == 'featmap' else (3,)
        self.out_norm_indices = self._parse_indices(out_norm_indices, 'out_norm_indices')
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in -1..{self.num_stages}, got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.convert_weights = convert_weights
        self.fast_path = fast_path

        if isinstance(pretrain_img_size, int):
            pretrain_img_size = (pretrain_img_size, pretrain_img_size)
        self.pretrain_img_size = tuple(pretrain_img_size)
        norm_cfg = dict(type='LN', eps=arch['norm_eps'])

        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            embed_dims=self.embed_dims[0],
            kernel_size=self.patch_size,
            stride=self.patch_size,
            padding='corner',
            norm_cfg=dict(type='LN'))
        # without absolute position embeddings, dropout follows the patch embedding
        self.drop_after_patch_embed = None if self._has_abs_pos_embed() else nn.Dropout(drop_rate)

        total_depth = sum(arch['depths'])
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, total_depth, device='cpu')]
        self.cls_token = None
        if out_type == 'cls_token':
            self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims[-1]))

        self.stages = ModuleList()
        for i in range(self.num_stages):
            first = sum(arch['depths'][:i])
            self.stages.append(
                LITStage(
                    in_channels=self.embed_dims[i - 1] if i else in_channels,
                    embed_dims=self.embed_dims[i],
                    depth=arch['depths'][i],
                    num_heads=arch['num_heads'][i],
                    mlp_ratio=arch['mlp_ratios'][i],
                    use_msa=i in arch['msa_stages'],
                    downsample=i > 0,
                    qkv_bias=qkv_bias,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    drop_path_rates=dpr[first:first + arch['depths'][i]],
                    norm_cfg=norm_cfg,
                    dtm_norm_cfg=dtm_norm_cfg,
                    with_cp=with_cp,
                    **self._stage_options(i)))

        for i in self.out_norm_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, self.embed_dims[i])[1])

        set_fast_path(self, fast_path)
        self._freeze_stages()

    # ------------------------------------------------------------------ construction helpers
    def _stage_options(self, i: int) -> dict:
        """What stage ``i`` adds to the shared :class:`LITStage` arguments (position embeddings, bias
        tables, HiLo, depthwise convs): each backbone's own."""
        raise NotImplementedError

    def _has_abs_pos_embed(self) -> bool:
        """Whether the stages add absolute position embeddings (then their dropout follows them, not the
        patch embedding)."""
        return False

    def _check_out_type(self, out_type: str) -> None:
        """Refuse an ``out_type`` this arch cannot give, naming the one to use; the shared checks follow."""

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        """Validate ``arch`` and complete it with :attr:`arch_defaults`.

        Args:
            arch (str | dict): An :attr:`arch_zoo` name (any case) or an arch dict.

        Returns:
            dict: A deep copy of the settings, with every key of :attr:`arch_required` and
            :attr:`arch_defaults`.

        Raises:
            ValueError: An unknown name; a dict with missing or unknown keys; a required entry without
                one value per stage.
            TypeError: ``arch`` is neither a str nor a dict.
        """
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(f'Unknown {cls.__name__} arch {arch!r}; valid archs are '
                                 f'{sorted(set(cls.arch_zoo))} or a dict with the keys '
                                 f'{list(cls.arch_required)} (and optionally {list(cls.arch_defaults)})')
            arch = cls.arch_zoo[key]
        elif not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        missing = [k for k in cls.arch_required if k not in arch]
        unknown = [k for k in arch if k not in cls.arch_required and k not in cls.arch_defaults]
        if missing or unknown:
            raise ValueError(f'Invalid {cls.__name__} arch dict: missing keys {missing}, unknown keys {unknown}; '
                             f'required: {list(cls.arch_required)}, optional: {list(cls.arch_defaults)}')
        settings = {**copy.deepcopy(cls.arch_defaults), **copy.deepcopy(arch)}
        for key in cls.arch_required:
            if len(settings[key]) != cls.num_stages:
                raise ValueError(f'arch[{key!r}] needs {cls.num_stages} values, got {settings[key]}')
        return settings

    def _parse_indices(self, indices: Sequence[int], name: str) -> tuple:
        """Normalise stage indices; negative ones count from the last stage.

        Args:
            indices (int | Sequence[int]): Stage indices in -4..3.
            name (str): The argument's name, for the error message.

        Returns:
            tuple[int]: The indices in 0..3, sorted, without duplicates.

        Raises:
            ValueError: An index out of range.
        """
        if isinstance(indices, int):
            indices = [indices]
        parsed = []
        for index in indices:
            if not -self.num_stages <= index < self.num_stages:
                raise ValueError(f'{name} must be stage indices in 0..{self.num_stages - 1} (or negative), '
                                 f'got {index}')
            parsed.append(index % self.num_stages)
        return tuple(sorted(set(parsed)))

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Initialise the weights, or load them as a ``Pretrained`` ``init_cfg`` says.

        Does nothing once initialised. With ``convert_weights`` and a ``Pretrained`` config, the checkpoint
        is converted from the official layout and loaded (:meth:`_load_converted_checkpoint`); otherwise
        MMEngine's ``init_cfg`` handling runs (the layers' own ``init_weights`` included). Without any
        ``init_cfg`` (as mmdet's Swin), the linear layers then get truncated-normal weights (std 0.02) and
        zero biases, the LayerNorms unit weights and zero biases, and the class token a truncated normal
        (std 0.02), as in the official code; a user's ``init_cfg`` is left as it initialised.
        """
        if self._is_init:
            return
        pretrained = self._pretrained_cfg()
        if pretrained is not None and self.convert_weights:
            self._load_converted_checkpoint(pretrained)
            return
        if pretrained is not None:
            # MMEngine's PretrainedInit only warns about what does not fit: refuse a checkpoint of another
            # arch first, as it would leave a model that is neither initialised nor pretrained
            self._check_fits(self._pretrained_state_dict(pretrained, convert=False), pretrained['checkpoint'])
        super().init_weights()
        if self.init_cfg is not None:
            return  # the checkpoint's weights, or the user's initialisation
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=.02)

    def _pretrained_cfg(self) -> Optional[dict]:
        """The first ``dict(type='Pretrained', ...)`` of ``init_cfg`` (a dict or a list), or None."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        for cfg in cfgs:
            if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
                return cfg
        return None

    def _pretrained_state_dict(self, cfg: dict, convert: bool) -> dict:
        """The state dict a ``Pretrained`` config gives this backbone, as MMEngine's ``PretrainedInit`` reads
        it (``state_dict`` unwrapped; the entries under ``prefix``, stripped of it; else every entry less
        a ``module.`` prefix), after conversion from the official layout when ``convert``.

        Raises:
            CheckpointError: No weights under the prefix.
        """
        checkpoint = CheckpointLoader.load_checkpoint(
            cfg['checkpoint'], map_location=cfg.get('map_location', 'cpu'), logger=MMLogger.get_current_instance())
        if convert:
            state_dict, prefix = lit_to_mmlit(checkpoint), cfg.get('prefix', 'backbone.')
        else:
            state_dict, prefix = checkpoint.get('state_dict', checkpoint), cfg.get('prefix')
        if prefix is None:
            return {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
        if not prefix.endswith('.'):
            prefix += '.'
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not state_dict:
            raise CheckpointError(f'{cfg["checkpoint"]} has no weights under the prefix {prefix!r}: set '
                                  "init_cfg's prefix to where its backbone weights are (mmlit's checkpoints "
                                  "and converted official ones: 'backbone.').")
        return state_dict

    def _check_fits(self, state_dict: dict, source: str) -> None:
        """Refuse ``state_dict`` when fewer than half of this backbone's tensors are in it with their shape
        (:func:`~mmlit.models.utils.check_fits`: a ``CheckpointError`` naming the arch it looks like)."""
        check_fits(self.state_dict(), state_dict, source, f'this {type(self).__name__} backbone',
                   fix="Set the backbone's arch to the checkpoint's, or pass a checkpoint of this arch.")

    def _load_converted_checkpoint(self, cfg: dict) -> None:
        """Load the backbone weights of an official LIT checkpoint (or an mmlit one) via :func:`lit_to_mmlit`.

        Only the entries under ``prefix`` are loaded, non-strictly (MMEngine logs missing and unexpected
        keys); the module then counts as initialised.

        Args:
            cfg (dict): The ``Pretrained`` config: ``checkpoint`` (a path or URL), and optionally ``prefix``
                (default ``'backbone.'``, the prefix :func:`lit_to_mmlit` gives) and ``map_location``
                (default ``'cpu'``).

        Raises:
            CheckpointError: No weights under the prefix, or fewer than half of the backbone's tensors.
        """
        state_dict = self._pretrained_state_dict(cfg, convert=True)
        self._check_fits(state_dict, cfg['checkpoint'])
        load_state_dict(self, state_dict, strict=False, logger=MMLogger.get_current_instance())
        self._is_init = True

    # ------------------------------------------------------------------ train-time behaviour
    def _freeze_stages(self) -> None:
        """Put the parts that ``frozen_stages`` freezes in eval mode and stop their gradients.

        ``frozen_stages >= 0`` freezes the patch embedding (and the dropout after it); ``k >= 1`` also
        stages 1..k (indices 0..k-1) and their output norms; 4 also the class token of the last stage.
        """
        frozen = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
            if self.drop_after_patch_embed is not None:
                frozen.append(self.drop_after_patch_embed)
        for i in range(self.frozen_stages):
            frozen.append(self.stages[i])
            if i in self.out_norm_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False
        if self.frozen_stages == self.num_stages and self.cls_token is not None:
            self.cls_token.requires_grad = False

    def train(self, mode: bool = True):
        """Set training or eval mode, keeping the frozen stages in eval mode.

        With ``norm_eval``, training mode also keeps every BatchNorm (those of the DTMs) in eval mode, so
        its running statistics stay fixed.

        Args:
            mode (bool): Training mode (True) or eval mode (False).

        Returns:
            LIT: The module itself.
        """
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` that says what is wrong with ``x`` when it is no batch of images."""
        channels = self.patch_embed.projection.in_channels
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            hint = ' (one image: add the batch dim with x[None])' if getattr(x, 'ndim', 0) == 3 else ''
            raise ValueError(f'{type(self).__name__} takes a batch of images of shape (B, {channels}, H, W); '
                             f'got {shape}{hint}')
        if x.shape[0] == 0:
            raise ValueError(f'{type(self).__name__} got an empty batch (0 images, shape {tuple(x.shape)}): pass '
                             'at least one image')
        if x.shape[1] != channels:
            raise ValueError(f'{type(self).__name__} was built for {channels}-channel images (in_channels) and '
                             f'got {x.shape[1]} channels (shape {tuple(x.shape)})')

    def forward(self, x: torch.Tensor) -> tuple:
        """Run the backbone on a batch of images.

        Args:
            x (Tensor): Images of shape (B, C, H, W); any size (the patch embedding pads to a multiple
                of 4, each DTM pads odd sizes).

        Returns:
            tuple[Tensor]: One output per stage of ``out_indices``, in stage order, after its LayerNorm
            when the stage is in ``out_norm_indices``. Stage i gives a contiguous (B, C_i, ceil(H / s),
            ceil(W / s)) map, stride s = 4 * 2**i; with ``out_type='avg_featmap'`` the last stage gives the
            (B, C_3) mean of its tokens, with ``'cls_token'`` its (B, C_3) class token.
        """
        self._check_input(x)
        B = x.shape[0]
        x, hw = self.patch_embed(x)
        if self.drop_after_patch_embed is not None:
            x = self.drop_after_patch_embed(x)
        outs = []
        for i, stage in enumerate(self.stages):
            is_last = i == self.num_stages - 1
            extra = self.cls_token.expand(B, -1, -1) if (is_last and self.cls_token is not None) else None
            x, hw = stage(x, hw, extra_tokens=extra)
            if i not in self.out_indices:
                continue
            out = getattr(self, f'norm{i}')(x) if i in self.out_norm_indices else x
            if is_last and self.out_type == 'cls_token':
                outs.append(out[:, 0])
            elif is_last and self.out_type == 'avg_featmap':
                outs.append(out.mean(dim=1))
            else:
                # (B, N, C) tokens viewed as (B, C, H, W) have channels-last strides; necks and heads get a
                # contiguous map, as from any mmdet backbone: mmcv's RoIAlign reads its input's memory as
                # (B, C, H, W) and pools garbage from a channels-last one.
                outs.append(out.transpose(1, 2).reshape(B, -1, *hw).contiguous())
        return tuple(outs)


@MODELS.register_module()
class LIT(LITBase):
    """LIT: "Less is More: Pay Less Attention in Vision Transformers" (AAAI 2022).

    A four-stage hierarchical vision Transformer (strides 4/8/16/32). Stages 1-2 use MLP-only blocks,
    stages 3-4 global multi-head self-attention; deformable token merging (DTM) links the stages.

    - LIT-Ti: absolute position embedding per stage (a class-token slot in the last one).
    - LIT-S/M/B: relative position bias tables in the attention stages, LayerNorm on the dense outputs
      of stages 2-4.

    Args:
        arch (str | dict): ``'ti'``, ``'s'``, ``'m'``, ``'b'`` (or ``'tiny'``, ``'small'``, ``'medium'``,
            ``'base'``), or a dict with the keys of :attr:`arch_zoo` entries (``embed_dims``, ``depths``,
            ``num_heads``, ``mlp_ratios`` are required).
        in_channels (int): Image channels. Defaults to 3.
        pretrain_img_size (int | tuple[int]): Resolution the position embeddings / relative position bias
            tables are sized for. They are resized to the actual input. Defaults to 224.
        out_indices (Sequence[int]): Stages whose outputs are returned. Defaults to (0, 1, 2, 3).
        out_type (str): ``'featmap'`` returns (B, C, H, W) maps for dense prediction; ``'avg_featmap'``
            (LIT-S/M/B classifiers) and ``'cls_token'`` (LIT-Ti classifier) return the (B, C) vector of
            the last stage after its norm, as the official classifiers do. Defaults to ``'featmap'``.
        out_norm_indices (Sequence[int], optional): Stages whose outputs go through a LayerNorm. Defaults
            to the arch's choice for dense outputs, and to ``(3,)`` (the final norm) for classification.
        qkv_bias (bool): Bias in the qkv projections. Defaults to True.
        drop_rate (float): Dropout rate. Defaults to 0.
        attn_drop_rate (float): Attention dropout rate. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate, increasing linearly over the blocks. Defaults to 0.1.
        frozen_stages (int): -1 freezes nothing, 0 the patch embedding, k >= 1 also stages 1..k (4: the
            class token too).
        norm_eval (bool): Keep the BatchNorms (in the DTMs) in eval mode while training.
        with_cp (bool): Gradient checkpointing of each block; saves memory, costs time.
        dtm_norm_cfg (dict): Normalisation in the deformable token merging layers. Defaults to
            ``dict(type='BN')``.
        fast_path (bool): Swap in the layers' fast subclasses (:mod:`mmlit.models.fast_path`): attention
            through ``F.scaled_dot_product_attention`` with the bias as windows of its table, bounded
            memory at detection sizes, eval-mode caches of the resized embeddings and tables, a chunked and
            fused inference MLP. The results are the plain formulas'; False runs those. Defaults to True.
        convert_weights (bool): Convert a checkpoint given by ``init_cfg=dict(type='Pretrained', ...)``
            from the official LIT layout while loading it. Defaults to False.
        init_cfg (dict, optional): Initialisation config; ``dict(type='Pretrained', checkpoint=...,
            prefix='backbone.')`` loads weights.
    """

    # What varies between the archs; the rest is :attr:`arch_defaults`.
    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['ti', 'tiny'], {
            'embed_dims': [64, 128, 320, 512],
            'depths': [3, 4, 6, 3],
            'num_heads': [1, 2, 5, 8],
            'mlp_ratios': [8, 8, 4, 4],
            'abs_pos_embed': True,
            'rel_pos_bias': False,
            'cls_token': True,
            'norm_eps': 1e-6,
            'out_norm_indices': (),
        }),
        **SMB_ARCHS,
    }
    # The LIT-S/M/B design, which an arch may change. msa_stages: the stages with self-attention (the others
    # are MLP-only); abs_pos_embed: PVT-like absolute position embeddings (LIT-Ti); rel_pos_bias: Swin-like
    # relative position bias tables; cls_token: a class-token slot in the last stage; norm_eps: the blocks'
    # LayerNorm epsilon; out_norm_indices: stages whose dense outputs get a LayerNorm.
    arch_defaults = {
        'msa_stages': (2, 3),
        'abs_pos_embed': False,
        'rel_pos_bias': True,
        'cls_token': False,
        'norm_eps': 1e-5,
        'out_norm_indices': (1, 2, 3),
    }
    OUT_TYPES = ('featmap', 'avg_featmap', 'cls_token')

    def __init__(self, arch: Union[str, dict] = 'ti', **kwargs):
        super().__init__(arch=arch, **kwargs)

    def _check_out_type(self, out_type: str) -> None:
        """A class token only where the arch has one (LIT-Ti)."""
        if out_type == 'cls_token' and not self.arch_settings['cls_token']:
            raise ValueError("out_type='cls_token' needs an arch with a class token (LIT-Ti); LIT-S/M/B "
                             "classifiers use out_type='avg_featmap'")

    def _has_abs_pos_embed(self) -> bool:
        """LIT-Ti's stages add absolute position embeddings."""
        return self.arch_settings['abs_pos_embed']

    def _stage_options(self, i: int) -> dict:
        """LIT-Ti's absolute position embedding (with a class-token slot in the last stage) or LIT-S/M/B's
        relative position bias tables, sized for the ``pretrain_img_size`` grid."""
        arch = self.arch_settings
        grid = tuple(s // (self.patch_size * 2**i) for s in self.pretrain_img_size)
        return dict(
            pos_embed_shape=grid if arch['abs_pos_embed'] else None,
            num_extra_tokens=int(arch['cls_token'] and i == self.num_stages - 1),
            rel_pos_shape=grid if (i in arch['msa_stages'] and arch['rel_pos_bias']) else None)


@MODELS.register_module()
class LITv2(LITBase):
    """LITv2: LIT's MLP-only early stages and deformable token merging, HiLo attention in stages 3-4,
    and a depthwise 3x3 conv in every MLP in place of position embeddings.

    A sibling of :class:`LIT` over their shared :class:`LITBase` (patch embedding, DTM, stages, output
    norms, freezing, the output modes and the loading of official checkpoints, converted on the fly); the
    arguments are LIT's (see there) less ``out_type='cls_token'``.

    Args:
        arch (str | dict): ``'s'``, ``'m'``, ``'b'`` (or ``'small'``, ``'medium'``, ``'base'``), or a dict
            with the keys of :attr:`arch_zoo` entries (``embed_dims``, ``depths``, ``num_heads``,
            ``mlp_ratios`` are required).
        alpha (float, optional): Fraction of Lo-Fi heads in HiLo attention; the arch's (0.9) if None.
        local_ws (Sequence[int], optional): HiLo window size per stage (used in the attention stages; 1
            is plain global attention); the arch's ``(0, 0, 2, 1)`` if None. The ``_ws_4`` detection
            models use ``(0, 0, 4, 1)``.
        **kwargs: The arguments of :class:`LIT`.
    """

    # What varies between the archs; the rest is :attr:`arch_defaults`.
    arch_zoo: Dict[str, dict] = {
        **SMB_ARCHS,
    }
    # The LITv2 design, which an arch may change. msa_stages: the stages with HiLo attention (the others are
    # MLP-only); alpha: the fraction of Lo-Fi heads; local_ws: the HiLo window per stage; norm_eps: the
    # blocks' LayerNorm epsilon; out_norm_indices: stages whose dense outputs get a LayerNorm.
    arch_defaults = {
        'msa_stages': (2, 3),
        'alpha': 0.9,
        'local_ws': (0, 0, 2, 1),
        'norm_eps': 1e-5,
        'out_norm_indices': (1, 2, 3),
    }

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 alpha: Optional[float] = None,
                 local_ws: Optional[Sequence[int]] = None,
                 **kwargs):
        settings = self._parse_arch(arch)  # a copy, to complete
        if alpha is not None:
            settings['alpha'] = alpha
        if local_ws is not None:
            if len(local_ws) != self.num_stages:
                raise ValueError(f'local_ws needs {self.num_stages} window sizes, got {tuple(local_ws)}')
            settings['local_ws'] = tuple(local_ws)
        for i in settings['msa_stages']:
            if settings['local_ws'][i] < 1:
                raise ValueError(f'local_ws[{i}] must be >= 1 in an attention stage, got {settings["local_ws"]}')
        super().__init__(arch=settings, **kwargs)

    def _check_out_type(self, out_type: str) -> None:
        """No class token in LITv2."""
        if out_type == 'cls_token':
            raise ValueError("LITv2 has no class token; its classifiers use out_type='avg_featmap'")

    def _stage_options(self, i: int) -> dict:
        """LITv2's stages: HiLo attention in the attention stages, depthwise convs in every MLP."""
        arch = self.arch_settings
        hilo = dict(window_size=arch['local_ws'][i], alpha=arch['alpha']) if i in arch['msa_stages'] else None
        return dict(hilo=hilo, dw_conv=True)
