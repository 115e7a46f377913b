# Mask2Former, COCO instance segmentation, LSJ 1024x1024, 50 epochs (mmdet's Swin-T recipe), with LIT-S: drop path
# 0.2, gradient checkpointing, relative position tables sized for 800px (the official detection backbone).
# Gradient checkpointing also in the head: the pixel decoder's six deformable encoder layers run again in the
# backward (mmdet's `num_cp`, which needs fairscale, in requirements/optional.txt).
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['./mask2former_lit_ti_8xb2_lsj_50e_coco.py']

pretrained = 'pretrained/lit_s.pth'  # github.com/zhuang-group/LIT

model = dict(
    backbone=dict(
        arch='s',
        drop_path_rate=0.2,
        pretrain_img_size=800,
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    panoptic_head=dict(in_channels=[96, 192, 384, 768], pixel_decoder=dict(encoder=dict(num_cp=6))))
