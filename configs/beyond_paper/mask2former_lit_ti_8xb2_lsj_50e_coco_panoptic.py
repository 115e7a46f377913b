# Mask2Former, COCO panoptic segmentation, LSJ 1024x1024, 50 epochs (mmdet's Swin-T recipe), with LIT-Ti. The
# upstream recipe as the LIT authors adapted RetinaNet and Mask R-CNN: the backbone swapped in, drop path 0.1 (the
# paper's detectors), no weight decay on position embeddings, relative position tables and norms.
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['mmdet::mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py']

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
    panoptic_head=dict(in_channels=[64, 128, 320, 512]))

# the backbone at a tenth of the learning rate; no weight decay on its norms, position embeddings and
# relative position tables (keys longer than 'backbone' win; LIT-M/B have 18 blocks in stage 3)
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.patch_embed.norm': backbone_no_decay,
    'backbone.norm': backbone_no_decay,
    'pos_embed': backbone_no_decay,
    'relative_position_bias_table': backbone_no_decay,
    'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
    'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
    'level_embed': dict(lr_mult=1.0, decay_mult=0.0),
}
custom_keys.update({
    f'backbone.stages.{stage}.blocks.{block}.norm': backbone_no_decay
    for stage in range(4) for block in range(18)
})
custom_keys.update({f'backbone.stages.{stage}.downsample.norm': backbone_no_decay for stage in range(4)})
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys, norm_decay_mult=0.0))
