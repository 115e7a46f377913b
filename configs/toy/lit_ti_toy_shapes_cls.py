# A LIT-Ti classifier on mmlit's embedded toy-shapes data (label: the largest shape in the image).
_base_ = ['../lit_ti_8xb128_in1k.py']

data_root = 'data/toy_shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle'))

model = dict(
    backbone=dict(drop_path_rate=0.),
    head=dict(num_classes=3, loss=dict(_delete_=True, type='CrossEntropyLoss', loss_weight=1.0)),
    train_cfg=dict(_delete_=True))
data_preprocessor = dict(num_classes=3)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
# mmlit.ToyShapes generates the data when it is missing (see configs/toy/mask_rcnn_lit_ti_fpn_toy_shapes.py)
dataset = dict(type='mmlit.ToyShapes', dataset_type='CustomDataset', data_root=data_root, metainfo=metainfo,
               with_label=True)
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, ann_file='meta/train.txt', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, ann_file='meta/val.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, end=max_epochs)]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
auto_scale_lr = dict(base_batch_size=8)
