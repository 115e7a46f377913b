"""LIT's fast paths: the same computations as the model's plain formulas, arranged for speed.

The model's layers (:mod:`mmlit.models.layers`) each read as the paper's formula. Those with a faster
arrangement have a subclass here that overrides the forward (or the one method that differs) and falls
back to the plain code where the fast one does not apply (exporters, autograd where it keeps more):

- :class:`FastGlobalMultiheadAttention` (:mod:`.attention`, :mod:`.rel_pos_attention`,
  :mod:`.rel_pos_bias`): SDPA with the relative position bias as windows of its table, bounded memory at
  detection sizes, a flash-style training function on CPU;
- :class:`FastHiLoAttention` (:mod:`.short_keys`): two matmuls over few keys on CPU;
- :class:`FastMLPBlock`, :class:`FastMSABlock` (:mod:`.blocks`): the inference MLP over chunks of tokens
  and, in float32 CPU inference, through oneDNN's fused linears (:mod:`.linear`);
- :class:`FastAbsolutePositionEmbedding` (:mod:`.position_embedding`): the resized embedding cached in
  eval mode (:mod:`.param_cache`).

:func:`set_fast_path` swaps them in or out of a built model, module by module (``LIT(fast_path=...)``
calls it once at build time). Tests compare every fast path with the plain formula.
"""
from typing import Dict

import torch.nn as nn

from ..layers import AbsolutePositionEmbedding, GlobalMultiheadAttention, HiLoAttention, MLPBlock, MSABlock
from .attention import FastGlobalMultiheadAttention, fast_attention
from .blocks import FastMLPBlock, FastMSABlock, per_token_chunks
from .param_cache import ParamCache, cached, module_cache
from .position_embedding import FastAbsolutePositionEmbedding
from .rel_pos_bias import rel_pos_bias_from_table, rel_pos_bias_row_windows, rel_pos_bias_rows_view
from .short_keys import FastHiLoAttention, short_key_attention

# plain layer -> its fast subclass
FAST_CLASSES: Dict[type, type] = {
    GlobalMultiheadAttention: FastGlobalMultiheadAttention,
    HiLoAttention: FastHiLoAttention,
    MLPBlock: FastMLPBlock,
    MSABlock: FastMSABlock,
    AbsolutePositionEmbedding: FastAbsolutePositionEmbedding,
}
PLAIN_CLASSES: Dict[type, type] = {fast: plain for plain, fast in FAST_CLASSES.items()}

__all__ = ['FAST_CLASSES', 'PLAIN_CLASSES', 'set_fast_path', 'FastGlobalMultiheadAttention', 'FastHiLoAttention',
           'FastMLPBlock', 'FastMSABlock', 'FastAbsolutePositionEmbedding', 'fast_attention', 'per_token_chunks',
           'ParamCache', 'cached', 'module_cache', 'rel_pos_bias_from_table', 'rel_pos_bias_row_windows',
           'rel_pos_bias_rows_view', 'short_key_attention']


def set_fast_path(model: nn.Module, enabled: bool) -> nn.Module:
    """Swap the fast subclasses in (``enabled``) or the plain layers back, in every module of ``model``.

    Only modules of exactly a plain layer class (or its fast subclass) change class; the fast classes add
    no parameters or buffers, so the state dict is unchanged. A ``fast_path`` attribute (the backbones')
    records the choice. Returns ``model``.
    """
    swap = FAST_CLASSES if enabled else PLAIN_CLASSES
    for module in model.modules():
        new_class = swap.get(type(module))
        if new_class is not None:
            if not enabled:
                module.__dict__.pop('_param_caches', None)
            module.__class__ = new_class
        if 'fast_path' in module.__dict__:
            module.fast_path = enabled
    return model
