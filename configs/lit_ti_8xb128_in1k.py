# LIT-Ti on ImageNet-1k, the official recipe (DeiT-style): 300 epochs, batch 8 x 128, AdamW lr 1e-3
# (5e-4 x 1024 / 512), weight decay 0.05, 5 warmup epochs, cosine to 1e-5, drop path 0.1, label
# smoothing 0.1, Mixup 0.8 / CutMix 1.0, DTM offset convs at 0.01x lr, no decay on position
# embeddings, the class token and norms.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmlit'], allow_failed_imports=False)
default_scope = 'mmpretrain'

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmlit.LIT', arch='ti', drop_path_rate=0.1, out_type='cls_token', out_indices=(3, )),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0),
            'conv_offset': dict(lr_mult=0.01),
        }))

max_epochs = 300
warmup_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs, end=max_epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)

# reseed per iteration: a run resumed with --resume ends exactly like an uninterrupted one
custom_hooks = [dict(type='mmlit.IterationSeedHook')]
