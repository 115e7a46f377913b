"""The layers of the LIT family, the plain formulas: attention (LIT's global multi-head self-attention,
LITv2's HiLo attention), blocks (the MLP, with LITv2's depthwise conv; MLP-only and self-attention
blocks), and embedding (deformable token merging, absolute position embedding). :mod:`mmlit.models.fast_path`
swaps in faster subclasses of some of them."""
from .attention import GlobalMultiheadAttention, HiLoAttention
from .blocks import Mlp, MLPBlock, MSABlock
from .embedding import AbsolutePositionEmbedding, DeformableTokenMerging

__all__ = [
    'GlobalMultiheadAttention', 'HiLoAttention', 'Mlp', 'MLPBlock', 'MSABlock', 'DeformableTokenMerging',
    'AbsolutePositionEmbedding'
]
