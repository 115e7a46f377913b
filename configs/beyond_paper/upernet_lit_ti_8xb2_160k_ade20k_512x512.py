# UperNet, ADE20K, 512x512, 160k iterations (mmseg's Swin-T recipe), with LIT-Ti. The upstream recipe as the LIT
# authors adapted RetinaNet and Mask R-CNN: the backbone swapped in, drop path 0.1 (the paper's detectors), no
# weight decay on position embeddings, relative position tables and norms.
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py']

custom_imports = dict(imports=['mmlit'], allow_failed_imports=False)
default_scope = 'mmseg'

pretrained = 'pretrained/lit_ti.pth'  # github.com/zhuang-group/LIT

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmlit.LIT',
        arch='ti',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 320, 512]), auxiliary_head=dict(in_channels=320))

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
        }))
