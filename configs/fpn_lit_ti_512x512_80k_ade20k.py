# Semantic FPN with LIT-Ti on ADE20K: 512x512 crops, 80k iterations, official hyperparameters (AdamW lr
# 1e-4, weight decay 1e-4, poly schedule of the mmseg 80k base).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_80k.py'
]

custom_imports = dict(imports=['mmlit'], allow_failed_imports=False)
default_scope = 'mmseg'

# Official ImageNet weights (github.com/zhuang-group/LIT), converted while loading. Replace the path.
pretrained = 'pretrained/lit_ti.pth'

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmlit.LIT',
        arch='ti',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 320, 512], out_channels=256, num_outs=4),
    decode_head=dict(num_classes=150))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.0001),
    clip_grad=None)

# reseed per iteration: a run resumed with --resume ends exactly like an uninterrupted one
custom_hooks = [dict(type='mmlit.IterationSeedHook')]
