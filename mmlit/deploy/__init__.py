"""What mmdeploy (1.3.1, torch 2.0 / 2.1) needs beyond its own rewriters to export whole LIT models with
dynamic shapes. Imported by mmlit's deploy configs (``tools/deployment/deploy_cfgs``) through their
``custom_imports``, never by ``import mmlit``; needs mmdeploy."""
from . import mmdeploy_rewriters  # noqa: F401  (registers the rewriters)
