# DINO 4-scale, COCO, 12 epochs (mmdet's R-50 recipe), with LIT-S: drop path 0.2, gradient checkpointing, relative
# position tables sized for 800px (the official detection backbone).
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['./dino_4scale_lit_ti_8xb2_12e_coco.py']

pretrained = 'pretrained/lit_s.pth'  # github.com/zhuang-group/LIT

model = dict(
    backbone=dict(
        arch='s',
        drop_path_rate=0.2,
        pretrain_img_size=800,
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768]))
