"""mmdeploy function rewriters for the heads mmlit's configs pair with LIT.

mmseg's ``Upsample`` (the scale heads of the Semantic FPN's ``FPNHead``) computes its output size as
Python ints from the input's shape. Under the TorchScript tracer that mmdeploy exports with, those ints
are the traced image's: a dynamic ONNX file then upsamples every other image size to the wrong size, and
the head's sum resizes it back, so the segmentation is slightly wrong (2% of the pixels of a toy Semantic FPN
at 192 x 256 after tracing at 224 x 224) and nothing fails. The rewrite gives ``F.interpolate`` the scale
factor instead (the same sampling for the integer factors the heads use): the size then follows the input.
"""
from mmdeploy.core import FUNCTION_REWRITER
from mmseg.models.utils import resize


@FUNCTION_REWRITER.register_rewriter(func_name='mmseg.models.utils.Upsample.forward')
def upsample__forward(self, x):
    """mmseg's ``Upsample.forward`` with its scale factor, not a size fixed at tracing."""
    if self.size:
        return resize(x, self.size, None, self.mode, self.align_corners)
    return resize(x, None, self.scale_factor, self.mode, self.align_corners)
