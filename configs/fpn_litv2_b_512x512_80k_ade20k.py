# Semantic FPN with LITv2-B on ADE20K: the LITv2-S recipe (official), drop path 0.3.
_base_ = ['./fpn_litv2_s_512x512_80k_ade20k.py']

pretrained = 'pretrained/litv2_b.pth'  # https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_b.pth

model = dict(
    backbone=dict(arch='b', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
