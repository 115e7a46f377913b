"""mmlit's bf16 inference mode: backbone and neck under autocast, float32 features for the heads."""
import pytest
import torch
import torch.nn as nn

from mmlit.models import LIT
from mmlit_tools.amp import autocast_features


class Detector(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = LIT(arch=dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                                      mlp_ratios=[2] * 4), out_indices=(2, 3))
        self.neck = nn.Conv2d(64, 8, 1)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        feats = self.backbone(x)
        self.seen = [f.dtype for f in feats]
        y = self.neck(feats[-1])
        self.seen.append(y.dtype)
        return self.head(y.mean((2, 3)))


def test_backbone_and_neck_run_in_bf16_heads_in_fp32():
    torch.manual_seed(0)
    model = Detector().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fp32 = model(x)
        inner = []
        handle = model.backbone.stages[2].blocks[0].register_forward_hook(lambda m, i, o: inner.append(o.dtype))
        autocast_features(model)
        bf16 = model(x)
        handle.remove()
    assert inner == [torch.bfloat16]  # inside the backbone: bf16
    assert model.seen == [torch.float32] * 3  # what leaves the backbone and the neck: float32
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, fp32, rtol=0.05, atol=0.05)
    assert not bf16.equal(fp32)  # really computed in reduced precision


def test_a_model_without_those_parts_is_refused():
    with pytest.raises(ValueError, match="none of \\['backbone', 'neck'\\]"):
        autocast_features(nn.Linear(2, 2))
