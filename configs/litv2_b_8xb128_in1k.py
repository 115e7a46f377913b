# LITv2-B on ImageNet-1k, the official recipe (github.com/ziplab/LITv2, Swin-style): 300 epochs, batch
# 8 x 128, AdamW lr 1e-3 (5e-4 x 1024 / 512), weight decay 0.05, 20 warmup epochs, cosine to 1e-5,
# gradient clipping 5.0, drop path 0.5, DTM offset convs at 0.01x lr, no decay on norms; HiLo alpha 0.9.
_base_ = ['./lit_s_8xb128_in1k.py']

model = dict(
    backbone=dict(
        _delete_=True, type='mmlit.LITv2', arch='b', drop_path_rate=0.5, out_type='avg_featmap',
        out_indices=(3, )),
    head=dict(in_channels=1024))
