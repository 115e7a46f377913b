# Mask2Former, COCO panoptic segmentation, LSJ 1024x1024, 50 epochs (mmdet's Swin-T recipe), with LITv2-M: the
# LITv2-S config with drop path 0.2.
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['./mask2former_litv2_s_8xb2_lsj_50e_coco_panoptic.py']

pretrained = 'pretrained/litv2_m.pth'  # https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_m.pth

model = dict(
    backbone=dict(arch='m', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    panoptic_head=dict(in_channels=[96, 192, 384, 768]))
