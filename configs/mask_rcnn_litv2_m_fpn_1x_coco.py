# Mask R-CNN + FPN with LITv2-M on COCO, 1x schedule: the LITv2-S recipe (official), drop path 0.2.
_base_ = ['./mask_rcnn_litv2_s_fpn_1x_coco.py']

pretrained = 'pretrained/litv2_m.pth'  # https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_m.pth

model = dict(
    backbone=dict(arch='m', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
