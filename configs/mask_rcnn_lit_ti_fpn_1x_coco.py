# Mask R-CNN + FPN with LIT-Ti on COCO, 1x schedule: the official LIT hyperparameters
# (AdamW lr 2e-4, weight decay 1e-4, 500-iter linear warmup, steps at epochs 8 and 11).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlit'], allow_failed_imports=False)
default_scope = 'mmdet'

# Official ImageNet weights (github.com/zhuang-group/LIT), converted while loading. Replace the path.
pretrained = 'pretrained/lit_ti.pth'

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
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0002, weight_decay=0.0001))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
# the official runs: 8 GPUs x 2 images
auto_scale_lr = dict(enable=False, base_batch_size=16)

# reseed per iteration: a run resumed with --resume ends exactly like an uninterrupted one
custom_hooks = [dict(type='mmlit.IterationSeedHook')]
