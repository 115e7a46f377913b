# Mask R-CNN LITv2-S with HiLo windows of 4 in stage 3 (the official `_ws_4` models): faster at detection sizes.
_base_ = ['./mask_rcnn_litv2_s_fpn_1x_coco.py']

model = dict(backbone=dict(local_ws=(0, 0, 4, 1)))
