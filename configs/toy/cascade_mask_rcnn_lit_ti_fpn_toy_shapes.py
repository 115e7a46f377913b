# Cascade Mask R-CNN (configs/beyond_paper/, 4conv1fc GIoU heads) with LIT-Ti on mmlit's embedded toy-shapes
# data (generated on first use): the beyond-the-paper detector trained and tested end to end on a CPU.
_base_ = ['../beyond_paper/cascade_mask_rcnn_lit_ti_fpn_4conv1fc_giou_ms_crop_3x_coco.py']

data_root = 'data/toy_shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle'))

c = 128
# the three stages' box regressions, each finer than the last (the upstream heads, narrower, one process)
bbox_heads = [
    dict(type='ConvFCBBoxHead', num_shared_convs=4, num_shared_fcs=1, in_channels=c, conv_out_channels=c,
         fc_out_channels=256, roi_feat_size=7, num_classes=3, reg_class_agnostic=False, reg_decoded_bbox=True,
         bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
         norm_cfg=dict(type='BN', requires_grad=True),
         loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
         loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
    for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
]
model = dict(
    backbone=dict(init_cfg=None, convert_weights=False, drop_path_rate=0.),
    neck=dict(out_channels=c),
    rpn_head=dict(in_channels=c, feat_channels=c),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=c),
        bbox_head=bbox_heads,
        mask_roi_extractor=dict(out_channels=c),
        mask_head=dict(in_channels=c, conv_out_channels=c, num_classes=3)),
    # a few shapes per image: far fewer RoIs than COCO needs keep the CPU run short
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200)),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
dataset = dict(type='mmlit.ToyShapes', dataset_type='CocoDataset', data_root=data_root, metainfo=metainfo)
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='images/train/'), filter_cfg=dict(filter_empty_gt=True, min_size=32),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **dataset, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'), test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# the toy Mask R-CNN's optimiser (fp32: bfloat16 autocast does not pay at 128 px)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'pos_embed': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
        'conv_offset': dict(lr_mult=0.01)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[9], gamma=0.1),
]
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
auto_scale_lr = dict(enable=False, base_batch_size=4)
