# Mask2Former, ADE20K semantic segmentation, 512x512, 160k iterations (mmseg's Swin-T recipe), with LITv2-B: the
# LITv2-S config with drop path 0.3.
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['./mask2former_litv2_s_8xb2_160k_ade20k_512x512.py']

pretrained = 'pretrained/litv2_b.pth'  # https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_b.pth

model = dict(
    backbone=dict(arch='b', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]))
