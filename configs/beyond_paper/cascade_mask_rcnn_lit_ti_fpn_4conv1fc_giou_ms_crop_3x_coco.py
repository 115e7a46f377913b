# Cascade Mask R-CNN + FPN, 4conv1fc GIoU heads, 3x multi-scale crop (mmdet's ConvNeXt-T recipe), with LIT-Ti. The
# upstream recipe as the LIT authors adapted RetinaNet and Mask R-CNN: the backbone swapped in, drop path 0.1 (the
# paper's detectors), no weight decay on position embeddings, relative position tables and norms.
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py']

custom_imports = dict(imports=['mmlit'], allow_failed_imports=False)
default_scope = 'mmdet'

pretrained = 'pretrained/lit_ti.pth'  # github.com/zhuang-group/LIT

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlit.LIT',
        arch='ti',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 320, 512]))

# ConvNeXt's layer-wise learning-rate decay is ConvNeXt's own: LIT trains with plain AdamW (ConvNeXt's
# lr 2e-4, weight decay 0.05) and mmlit's mixed precision (bfloat16 autocast on a CPU-only machine)
optim_wrapper = dict(
    _delete_=True,
    type='mmlit.AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=0.0002, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
        }))
