# RetinaNet + FPN with LIT-S on COCO, 1x schedule, official hyperparameters: AdamW lr 1e-4, weight decay
# 1e-4 (none on position embeddings, relative position tables and norms), gradient checkpointing, mixed
# precision, drop path 0.2, relative position tables sized for 800px.
_base_ = ['./retinanet_lit_ti_fpn_1x_coco.py']

pretrained = 'pretrained/lit_s.pth'

model = dict(
    backbone=dict(
        arch='s',
        drop_path_rate=0.2,
        pretrain_img_size=800,
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    type='mmlit.AmpOptimWrapper',  # MMEngine's on GPUs; bfloat16 autocast on a CPU-only machine
    loss_scale='dynamic',
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
        }))
