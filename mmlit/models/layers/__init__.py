"""The layers of LIT: global multi-head self-attention, MLP-only and self-attention blocks,
deformable token merging (DTM) and absolute position embedding."""
from .attention import GlobalMultiheadAttention
from .blocks import MLPBlock, MSABlock
from .deformable_token_merging import DeformableTokenMerging
from .position_embedding import AbsolutePositionEmbedding

__all__ = [
    'GlobalMultiheadAttention', 'MLPBlock', 'MSABlock', 'DeformableTokenMerging',
    'AbsolutePositionEmbedding'
]
