# Semantic FPN with LITv2-S on ADE20K: 512x512 crops, 80k iterations, official hyperparameters
# (github.com/ziplab/LITv2: AdamW lr 1e-4, weight decay 1e-4, poly), drop path 0.2, HiLo window 2; as the
# official segmentation backbone, all four outputs are normed.
_base_ = ['./fpn_lit_ti_512x512_80k_ade20k.py']

# Official ImageNet weights, converted while loading; replace the path:
# https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_s.pth
pretrained = 'pretrained/litv2_s.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlit.LITv2',
        arch='s',
        local_ws=(0, 0, 2, 1),
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        out_norm_indices=(0, 1, 2, 3),
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
