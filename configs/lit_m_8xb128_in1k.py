# LIT-M on ImageNet-1k: the LIT-S recipe with drop path 0.3.
_base_ = ['./lit_s_8xb128_in1k.py']

model = dict(backbone=dict(arch='m', drop_path_rate=0.3))
