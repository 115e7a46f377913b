"""Utilities: checkpoint loading that never runs code (exported here); analysis, deployment, FLOP
counting, launching, environment checks and torch feature detection in the submodules."""
from .safe_checkpoint import (
                              CheckpointError,
                              CheckpointNotFoundError,
                              UnsafeCheckpointError,
                              history_buffer_method,
                              register_safe_loading,
                              safe_load,
)
from .stored_config import StoredConfigError, parse_stored_config, stored_config_of

__all__ = [
    'CheckpointError', 'CheckpointNotFoundError', 'UnsafeCheckpointError', 'StoredConfigError', 'register_safe_loading',
    'safe_load', 'history_buffer_method', 'parse_stored_config', 'stored_config_of'
]
