# DINO 4-scale, COCO, 12 epochs (mmdet's R-50 recipe), with LITv2-M: the LITv2-S config with drop path 0.2.
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['./dino_4scale_litv2_s_8xb2_12e_coco.py']

pretrained = 'pretrained/litv2_m.pth'  # https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_m.pth

model = dict(
    backbone=dict(arch='m', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768]))
