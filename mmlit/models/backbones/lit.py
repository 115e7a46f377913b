"""The LIT backbone: its arch zoo (LIT-Ti/S/M/B) and what its stages hold (LIT-Ti's absolute position
embeddings and class token, LIT-S/M/B's relative position bias tables); the rest is :class:`LITBase`."""
from typing import Dict, Union

from mmlit.registry import MODELS

from .lit_base import LITBase


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
