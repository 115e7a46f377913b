# Mask R-CNN with a LIT-S backbone on mmlit's embedded toy-shapes data: the LIT-S detection recipe
# (configs/mask_rcnn_lit_s_fpn_1x_coco.py: mixed precision, gradient checkpointing, no weight decay on
# position tables and norms) on the toy data, heads and schedule of mask_rcnn_lit_ti_fpn_toy_shapes.py,
# from scratch. On a machine without CUDA, mmlit.AmpOptimWrapper trains in bfloat16 autocast on the CPU.
#   python tools/train.py configs/toy/mask_rcnn_lit_s_fpn_toy_shapes.py
# One config has one base here (MMEngine refuses keys defined by two bases), so the LIT-S lines of
# ../mask_rcnn_lit_s_fpn_1x_coco.py are restated below; tests/test_engine checks that they agree.
_base_ = ['./mask_rcnn_lit_ti_fpn_toy_shapes.py']

model = dict(
    backbone=dict(arch='s', with_cp=True),  # no drop path, no weights: the toy trains from scratch
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    type='mmlit.AmpOptimWrapper',
    loss_scale='dynamic',
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
        }))
