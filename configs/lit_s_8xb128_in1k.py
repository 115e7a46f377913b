# LIT-S on ImageNet-1k, the official recipe (Swin-style): 300 epochs, batch 8 x 128, AdamW lr 1e-3
# (5e-4 x 1024 / 512), weight decay 0.05, 20 warmup epochs, cosine to 1e-5, gradient clipping 5.0,
# drop path 0.2, DTM offset convs at 0.01x lr, no decay on relative position tables and norms.
_base_ = ['./lit_ti_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='s', drop_path_rate=0.2, out_type='avg_featmap'),
    head=dict(in_channels=768))

optim_wrapper = dict(clip_grad=dict(max_norm=5.0))

warmup_epochs = 20
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs, end=300),
]
