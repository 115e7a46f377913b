# Semantic FPN with LIT-S on ADE20K: 512x512 crops, 80k iterations, official hyperparameters (AdamW lr
# 1e-4, weight decay 1e-4, poly), drop path 0.2, gradient checkpointing; as the official segmentation
# backbone, all four outputs are normed and the relative position tables are sized for 512px.
_base_ = ['./fpn_lit_ti_512x512_80k_ade20k.py']

pretrained = 'pretrained/lit_s.pth'

model = dict(
    backbone=dict(
        arch='s',
        drop_path_rate=0.2,
        pretrain_img_size=512,
        out_norm_indices=(0, 1, 2, 3),
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
