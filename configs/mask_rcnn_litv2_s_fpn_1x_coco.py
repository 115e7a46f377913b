# Mask R-CNN + FPN with LITv2-S on COCO, 1x schedule, official hyperparameters (github.com/ziplab/LITv2):
# AdamW lr 2e-4, weight decay 1e-4 (none on norms), mixed precision, drop path 0.2, HiLo window 2
# (alpha 0.9); the detection backbone normalises the outputs of stages 2-4.
_base_ = ['./mask_rcnn_lit_ti_fpn_1x_coco.py']

# Official ImageNet weights, converted while loading; replace the path:
# https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_s.pth
pretrained = 'pretrained/litv2_s.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlit.LITv2',
        arch='s',
        local_ws=(0, 0, 2, 1),
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    type='mmlit.AmpOptimWrapper',  # MMEngine's on GPUs; bfloat16 autocast on a CPU-only machine
    loss_scale='dynamic',
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
