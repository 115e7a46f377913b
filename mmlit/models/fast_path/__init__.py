"""LIT's fast paths: the same computations as the model's plain formulas, arranged for speed.

The model modules (:mod:`mmlit.models.layers`) each read as the paper's formula. Those with a faster
arrangement of it take one switch, ``fast_path`` (True by default; ``LIT(fast_path=...)`` sets it for
the whole model, :func:`set_fast_path` changes it on a built model), and call into this package only
when it is on:

- :mod:`.attention`: global attention through ``F.scaled_dot_product_attention`` with the relative
  position bias taken as windows of its table (no index gather), cached in eval mode, and built per
  block of query rows at detection sizes;
- :mod:`.mlp`: the MLP of inference over chunks of tokens;
- :mod:`.position_embedding`: the resized position embedding, cached in eval mode;
- :mod:`.short_keys`: HiLo's attention over few keys (its windows, its pooled keys at classification
  sizes) as two matmuls on CPU;
- :mod:`.param_cache`: the cache these use, valid while the parameters are unchanged.

Every fast path gives the plain path's results (tests compare them, module by module and for every arch).
ONNX / ``torch.export`` exporters always get the plain formulas.
"""
import torch.nn as nn

from .attention import fast_attention
from .mlp import per_token_chunks
from .param_cache import ParamCache, cached, module_cache
from .position_embedding import cached_pos_embed
from .rel_pos_bias import rel_pos_bias_from_table
from .short_keys import short_key_attention

__all__ = ['fast_attention', 'per_token_chunks', 'ParamCache', 'cached', 'module_cache', 'cached_pos_embed',
           'rel_pos_bias_from_table', 'short_key_attention', 'set_fast_path']


def set_fast_path(model: nn.Module, enabled: bool) -> nn.Module:
    """Turn the fast paths of every module of ``model`` that has one on or off; returns ``model``."""
    for module in model.modules():
        if hasattr(module, 'fast_path'):
            module.fast_path = enabled
    return model
