"""What mmlit's exports need beyond the exporters: shared by ``tools/deployment`` (torch's exporters) and,
through ``mmlit.deploy.mmdeploy_rewriters``, mmdeploy on torch 2.1. Never imported by ``import mmlit``."""
from .upsample import upsample_by_shape

__all__ = ['upsample_by_shape']
