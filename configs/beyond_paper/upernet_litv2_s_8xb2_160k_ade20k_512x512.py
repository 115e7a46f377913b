# UperNet, ADE20K, 512x512, 160k iterations (mmseg's Swin-T recipe), with LITv2-S: drop path 0.2, HiLo window 2
# and all four outputs normed (the official segmentation backbone).
# No trained weights exist for this config: only the ImageNet backbone is the authors' (converted while
# loading; replace the path).
_base_ = ['./upernet_lit_ti_8xb2_160k_ade20k_512x512.py']

pretrained = 'pretrained/litv2_s.pth'  # https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_s.pth

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlit.LITv2',
        arch='s',
        local_ws=(0, 0, 2, 1),
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        out_norm_indices=(0, 1, 2, 3),
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]), auxiliary_head=dict(in_channels=384))
