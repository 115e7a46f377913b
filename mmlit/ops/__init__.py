from .deform_conv import deform_conv2d_k2s2, deform_sample_k2s2

__all__ = ['deform_sample_k2s2', 'deform_conv2d_k2s2']
