"""LITv2: "Fast Vision Transformers with HiLo Attention" (NeurIPS 2022), the successor of LIT."""
from typing import Dict, Optional, Sequence, Union

from mmlit.registry import MODELS

from .lit_base import LITBase


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
