"""The layers of the LIT family: global multi-head self-attention (LIT), HiLo attention and the MLP with a
depthwise conv (LITv2), MLP-only and self-attention blocks, deformable token merging (DTM) and absolute
position embedding."""
from .attention import GlobalMultiheadAttention
from .blocks import MLPBlock, MSABlock
from .conv_ffn import ConvFFN
from .deformable_token_merging import DeformableTokenMerging
from .hilo_attention import HiLoAttention
from .position_embedding import AbsolutePositionEmbedding

__all__ = [
    'GlobalMultiheadAttention', 'HiLoAttention', 'ConvFFN', 'MLPBlock', 'MSABlock', 'DeformableTokenMerging',
    'AbsolutePositionEmbedding'
]
