"""What users call beside the registries: mmlit's classifiers in mmpretrain's model hub, and the authors'
checkpoints through the ``official-lit+`` loader scheme."""
from .model_hub import (
                        OFFICIAL_PREFIX,
                        load_official,
                        register_model_hub,
                        register_model_hub_when_imported,
                        register_official_scheme,
)

__all__ = [
    'OFFICIAL_PREFIX', 'load_official', 'register_model_hub', 'register_model_hub_when_imported',
    'register_official_scheme'
]
