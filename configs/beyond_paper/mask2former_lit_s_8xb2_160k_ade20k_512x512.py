# Mask2Former, ADE20K semantic segmentation, 512x512, 160k iterations (mmseg's Swin-T recipe), with LIT-S: drop
# path 0.2, gradient checkpointing, relative position tables sized for 512px and all four outputs normed (the
# official segmentation backbone).
# Gradient checkpointing also in the head: the pixel decoder's six deformable encoder layers run again in the
# backward (mmdet's `num_cp`, which needs fairscale, in requirements/optional.txt).
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['./mask2former_lit_ti_8xb2_160k_ade20k_512x512.py']

pretrained = 'pretrained/lit_s.pth'  # github.com/zhuang-group/LIT

model = dict(
    backbone=dict(
        arch='s',
        drop_path_rate=0.2,
        pretrain_img_size=512,
        out_norm_indices=(0, 1, 2, 3),
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768], pixel_decoder=dict(encoder=dict(num_cp=6))))
