from .safe_checkpoint import history_buffer_method, register_safe_globals

__all__ = ['register_safe_globals', 'history_buffer_method']
