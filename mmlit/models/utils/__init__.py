"""Helpers of the LIT models: checkpoint conversion from the official layouts, and resizing of position
embeddings and relative position bias tables."""
from .ckpt_convert import (
                           check_fits,
                           convert_checkpoint,
                           convert_meta,
                           detect_layout,
                           guess_arch,
                           lit_to_mmlit,
                           mmlit_to_lit,
                           tensor_fits,
                           unwrap_state_dict,
)
from .embed import rel_pos_bias_by_index, rel_pos_index, resize_pos_embed, resize_rel_pos_table

__all__ = [
    'resize_pos_embed', 'resize_rel_pos_table', 'rel_pos_bias_by_index', 'rel_pos_index', 'lit_to_mmlit',
    'mmlit_to_lit', 'detect_layout', 'unwrap_state_dict', 'convert_checkpoint', 'convert_meta',
    'guess_arch', 'tensor_fits', 'check_fits'
]
