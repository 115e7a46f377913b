# DINO 4-scale, COCO, 12 epochs (mmdet's R-50 recipe), with LITv2-S: drop path 0.2, HiLo window 4 in stage 3 (the
# official `_ws_4` detection models).
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['./dino_4scale_lit_ti_8xb2_12e_coco.py']

pretrained = 'pretrained/litv2_s.pth'  # https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_s.pth

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlit.LITv2',
        arch='s',
        local_ws=(0, 0, 4, 1),
        drop_path_rate=0.2,
        out_indices=(1, 2, 3),
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768]))
