# Mask R-CNN + FPN, 3x schedule with multi-scale crop (mmdet's Swin-T recipe), with LIT-Ti. The upstream recipe as
# the LIT authors adapted RetinaNet and Mask R-CNN: the backbone swapped in, drop path 0.1 (the paper's
# detectors), no weight decay on position embeddings, relative position tables and norms.
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py']

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

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
        }))
