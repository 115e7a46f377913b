"""Figures of what LIT learns: attention maps of its global self-attention, sampling locations of its
deformable token merging, and the backbone and image loading they share."""
from mmlit.utils.analysis import load_backbone

from .attention_maps import collect_attention_maps, draw_attention_grid
from .dtm_offsets import collect_dtm_offsets, draw_sampling_locations, trace_sampling_locations
from .inputs import load_image

__all__ = [
    'collect_dtm_offsets', 'trace_sampling_locations', 'draw_sampling_locations', 'collect_attention_maps',
    'draw_attention_grid', 'load_backbone', 'load_image'
]
