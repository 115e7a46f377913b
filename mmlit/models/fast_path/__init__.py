"""LIT's fast paths: the same computations as the model's plain formulas, arranged for speed.

The model modules (:mod:`mmlit.models.layers`) each read as the paper's formula. Those with a faster
arrangement of it take one switch, ``fast_path`` (True by default; ``LIT(fast_path=...)`` sets it for
the whole model, :func:`set_fast_path` changes it on a built model), and call into this package only
when it is on:

- :mod:`.attention`: global attention through ``F.scaled_dot_product_attention`` with the relative
  position bias taken as windows of its table (no index gather), cached in eval mode; at detection
  sizes read by every row of queries as a view of one small tensor (CPU inference), or built per block
  of query rows (GPUs);
- :mod:`.rel_pos_attention`: training on the CPU with a relative position bias, flash-style in blocks of
  queries, keeping nothing of size N x N for the backward;
- :mod:`.mlp`: the MLP of inference over chunks of tokens;
- :mod:`.linear`: on the CPU in float32 inference, the MLP's and the attention's linear layers through
  oneDNN, with the bias, the GELU and the residual add inside the GEMM;
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
from .rel_pos_bias import rel_pos_bias_from_table, rel_pos_bias_row_windows, rel_pos_bias_rows_view
from .short_keys import short_key_attention

__all__ = ['fast_attention', 'per_token_chunks', 'ParamCache', 'cached', 'module_cache', 'cached_pos_embed',
           'rel_pos_bias_from_table', 'rel_pos_bias_row_windows', 'rel_pos_bias_rows_view',
           'short_key_attention', 'set_fast_path']


def set_fast_path(model: nn.Module, enabled: bool) -> nn.Module:
    """Turn the fast paths of every module of ``model`` that has one on or off; returns ``model``."""
    for module in model.modules():
        if hasattr(module, 'fast_path'):
            module.fast_path = enabled
    return model
