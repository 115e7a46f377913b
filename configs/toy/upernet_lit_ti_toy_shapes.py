# UperNet (configs/beyond_paper/) with LIT-Ti on mmlit's embedded toy-shapes data (generated on first use):
# the beyond-the-paper segmentor trained and tested end to end on a CPU.
_base_ = ['../beyond_paper/upernet_lit_ti_8xb2_160k_ade20k_512x512.py']

data_root = 'data/toy_shapes/'
metainfo = dict(
    classes=('background', 'circle', 'square', 'triangle'),
    palette=[[0, 0, 0], [220, 20, 60], [0, 128, 255], [255, 200, 0]])
crop_size = (128, 128)

c = 128
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None, convert_weights=False, drop_path_rate=0.),
    decode_head=dict(channels=c, num_classes=4),
    auxiliary_head=dict(channels=c // 2, num_classes=4))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
dataset = dict(type='mmlit.ToyShapes', dataset_type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False)
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, pipeline=train_pipeline,
                 data_prefix=dict(img_path='images/train', seg_map_path='seg_maps/train')))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, pipeline=test_pipeline,
                 data_prefix=dict(img_path='images/val', seg_map_path='seg_maps/val')))
test_dataloader = val_dataloader

max_iters = 240
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=0.0005))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=max_iters, by_epoch=False)]
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=60, max_keep_ckpts=2))
