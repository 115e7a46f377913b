"""Figures of what LIT learns: attention maps of its global self-attention, sampling locations of its
deformable token merging, and the attention weights they are drawn from."""
from .attention_maps import collect_attention_maps, draw_attention_grid
from .attention_weights import attention_weights, hilo_attention_maps, reference_attention
from .dtm_offsets import collect_dtm_offsets, draw_sampling_locations, trace_sampling_locations

__all__ = [
    'collect_dtm_offsets', 'trace_sampling_locations', 'draw_sampling_locations', 'collect_attention_maps',
    'draw_attention_grid', 'attention_weights', 'hilo_attention_maps', 'reference_attention'
]
