# LIT-B on ImageNet-1k: the LIT-S recipe with drop path 0.5.
_base_ = ['./lit_s_8xb128_in1k.py']

model = dict(backbone=dict(arch='b', drop_path_rate=0.5), head=dict(in_channels=1024))
