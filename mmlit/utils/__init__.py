"""Utilities: checkpoint loading that never runs code (exported here); analysis, deployment, FLOP
counting, launching, environment checks and torch feature detection in the submodules."""
from .safe_checkpoint import history_buffer_method, register_safe_globals, register_safe_loading, safe_load

__all__ = ['register_safe_globals', 'register_safe_loading', 'safe_load', 'history_buffer_method']
