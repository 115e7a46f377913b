"""The layers of the LIT family: global multi-head self-attention (LIT), HiLo attention and the MLP with a
depthwise conv (LITv2), MLP-only and self-attention blocks, deformable token merging (DTM) and absolute
position embedding. These are the plain formulas; :mod:`mmlit.models.fast_path` swaps in faster
subclasses of some of them."""
from .attention import GlobalMultiheadAttention
from .blocks import MLPBlock, MSABlock
from .deformable_token_merging import DeformableTokenMerging
from .hilo_attention import HiLoAttention
from .mlp import Mlp
from .position_embedding import AbsolutePositionEmbedding

__all__ = [
    'GlobalMultiheadAttention', 'HiLoAttention', 'Mlp', 'MLPBlock', 'MSABlock', 'DeformableTokenMerging',
    'AbsolutePositionEmbedding'
]
