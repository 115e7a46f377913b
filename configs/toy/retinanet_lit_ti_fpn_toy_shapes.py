# RetinaNet with a LIT-Ti backbone on mmlit's embedded toy-shapes data (generated on first use).
_base_ = ['../retinanet_lit_ti_fpn_1x_coco.py']

data_root = 'data/toy_shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle'))

model = dict(
    backbone=dict(init_cfg=None, convert_weights=False, drop_path_rate=0.),
    bbox_head=dict(num_classes=3),
    test_cfg=dict(nms_pre=300, score_thr=0.0, max_per_img=20))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# mmlit.ToyShapes generates the data when it is missing, then builds the CocoDataset: the config runs the
# same from mmdet's tools/train.py, `mim train` or mmdet's inferencers as from mmlit's tools.
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True, type='mmlit.ToyShapes', dataset_type='CocoDataset', data_root=data_root,
        metainfo=metainfo, ann_file='annotations/instances_train.json', data_prefix=dict(img='images/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True, type='mmlit.ToyShapes', dataset_type='CocoDataset', data_root=data_root,
        metainfo=metainfo, ann_file='annotations/instances_val.json', data_prefix=dict(img='images/val/'),
        test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[9], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
auto_scale_lr = dict(enable=False, base_batch_size=4)
