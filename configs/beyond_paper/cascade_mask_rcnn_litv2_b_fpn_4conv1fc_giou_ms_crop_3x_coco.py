# Cascade Mask R-CNN + FPN, 4conv1fc GIoU heads, 3x multi-scale crop (mmdet's ConvNeXt-T recipe), with LITv2-B:
# the LITv2-S config with drop path 0.3.
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['./cascade_mask_rcnn_litv2_s_fpn_4conv1fc_giou_ms_crop_3x_coco.py']

pretrained = 'pretrained/litv2_b.pth'  # https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_b.pth

model = dict(
    backbone=dict(arch='b', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
