# Mask R-CNN with a LITv2-S backbone on mmlit's embedded toy-shapes data (generated on first use): the toy
# heads, data and schedule of mask_rcnn_lit_ti_fpn_toy_shapes.py, from scratch.
#   python tools/train.py configs/toy/mask_rcnn_litv2_s_fpn_toy_shapes.py
_base_ = ['./mask_rcnn_lit_ti_fpn_toy_shapes.py']

model = dict(
    backbone=dict(
        _delete_=True, type='mmlit.LITv2', arch='s', local_ws=(0, 0, 2, 1), drop_path_rate=0.,
        out_indices=(0, 1, 2, 3), out_norm_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[96, 192, 384, 768]))
