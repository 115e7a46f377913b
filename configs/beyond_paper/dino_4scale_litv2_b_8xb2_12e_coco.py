# DINO 4-scale, COCO, 12 epochs (mmdet's R-50 recipe), with LITv2-B: the LITv2-S config with drop path 0.3.
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['./dino_4scale_litv2_s_8xb2_12e_coco.py']

pretrained = 'pretrained/litv2_b.pth'  # https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_b.pth

model = dict(
    backbone=dict(arch='b', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[256, 512, 1024]))
