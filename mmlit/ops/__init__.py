"""Pure-PyTorch operators: the 2x2 stride-2 deformable convolution of deformable token merging."""
from .deform_conv import deform_conv2d_k2s2, deform_sample_k2s2

__all__ = ['deform_sample_k2s2', 'deform_conv2d_k2s2']
