from .attention import GlobalMultiheadAttention
from .blocks import MLPBlock, MSABlock
from .deformable_token_merging import DeformableTokenMerging
from .position_embedding import AbsolutePositionEmbedding

__all__ = [
    'GlobalMultiheadAttention', 'MLPBlock', 'MSABlock', 'DeformableTokenMerging',
    'AbsolutePositionEmbedding'
]
