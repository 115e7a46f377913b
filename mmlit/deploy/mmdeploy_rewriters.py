"""mmdeploy (1.3.1) function rewriters for the heads mmlit's configs pair with LIT; mmlit's deploy configs
(``tools/deployment/deploy_cfgs``) import this module through their ``custom_imports``. Needs mmdeploy.

mmseg's ``Upsample`` fixes its output size at the traced image's under the TorchScript tracer that mmdeploy
exports with (see :mod:`mmlit.deploy.upsample`); mmdeploy has no rewriter for it.
"""
from mmdeploy.core import FUNCTION_REWRITER

from .upsample import upsample_by_shape


@FUNCTION_REWRITER.register_rewriter(func_name='mmseg.models.utils.Upsample.forward')
def upsample__forward(self, x):
    """mmseg's ``Upsample.forward`` with a size that follows the input's shape."""
    return upsample_by_shape(self, x)
