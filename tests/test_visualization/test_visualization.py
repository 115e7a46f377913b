"""DTM sampling locations and attention maps (mmlit.visualization) and the two tools that draw them."""
import os.path as osp
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch

from mmlit.models import LIT, LITv2
from mmlit.models.utils import mmlit_to_lit
from mmlit.visualization import (
    collect_attention_maps,
    collect_dtm_offsets,
    draw_attention_grid,
    draw_sampling_locations,
    trace_sampling_locations,
)
from mmlit.visualization.dtm_offsets import COLORS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGE = osp.join(ROOT, 'demo', 'demo.png')
SMALL_S = dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4], mlp_ratios=[2] * 4)


def _with_offsets(model, value=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for stage in model.stages:
            if stage.downsample is not None:
                conv = stage.downsample.conv_offset
                conv.weight.zero_()
                conv.bias.copy_(torch.full((8, ), float(value)) if value is not None else
                                torch.randn(8, generator=gen))
    return model.eval()


def test_zero_offsets_trace_the_regular_grid():
    model = _with_offsets(LIT(arch='ti'), 0.)
    offsets = collect_dtm_offsets(model, torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in offsets] == [(1, 8, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2)]
    # DTM 3 token (1, 0) covers pixels 32..63 x 0..31: it merges the 64 patch centres there
    points = trace_sampling_locations(offsets, 2, (1, 0))
    ys, xs = np.meshgrid(np.arange(32, 64, 4) + 2., np.arange(0, 32, 4) + 2., indexing='ij')
    assert sorted(map(tuple, points)) == sorted(zip(ys.ravel(), xs.ravel()))


def test_offsets_move_the_sampling_locations():
    model = _with_offsets(LIT(arch='ti'), 1.)  # every kernel point one input token down and right
    offsets = collect_dtm_offsets(model, torch.randn(1, 3, 64, 64))
    points = trace_sampling_locations(offsets, 0, (1, 1))
    # DTM 1 token (1, 1) reads patch tokens (2..3, 2..3) + 1, centres (p + 0.5) * 4
    expected = [((2 + i + 1 + .5) * 4, (2 + j + 1 + .5) * 4) for i in (0, 1) for j in (0, 1)]
    assert sorted(map(tuple, points)) == sorted(expected)
    assert len(trace_sampling_locations(offsets, 2, (0, 0))) == 64


def test_draw_sampling_locations():
    image = mmcv.imread(IMAGE, channel_order='rgb')[:64, :96]
    model = _with_offsets(LIT(arch='ti'))
    offsets = collect_dtm_offsets(model, torch.randn(1, 3, 64, 96))
    canvas = draw_sampling_locations(image, offsets, [(32, 48), (10, 80)], scale=2)
    assert canvas.shape == (64 * 2 + 20, 3 * 96 * 2, 3)
    for color in COLORS[:2]:
        assert (canvas == color).all(-1).sum() > 10, f'no {color} marks drawn'


@pytest.mark.parametrize('arch', ['ti', SMALL_S])
def test_attention_maps_are_the_blocks_attention(arch):
    model = LIT(arch=arch, out_type='cls_token', out_indices=(3, )) if arch == 'ti' else LIT(arch=arch)
    model.init_weights()
    model.eval()
    records = collect_attention_maps(model, torch.randn(1, 3, 64, 64), query=(40, 20))
    expected_blocks = sum((arch['depths'] if isinstance(arch, dict) else [3, 4, 6, 3])[2:])
    assert len(records) == expected_blocks
    heads = arch['num_heads'] if isinstance(arch, dict) else [1, 2, 5, 8]
    for record in records:
        stride = 4 * 2**record['stage']
        assert record['maps'].shape == (heads[record['stage']], 64 // stride, 64 // stride)
        total = record['maps'].sum((1, 2))
        if arch == 'ti' and record['stage'] == 3:  # a class token takes the rest of the attention
            assert (total < 1).all()
        else:
            torch.testing.assert_close(total, torch.ones_like(total))


SMALL_V2 = dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 4], mlp_ratios=[2] * 4)


@pytest.mark.parametrize('hw,query', [((64, 64), (40, 20)), ((96, 80), (70, 50))])
def test_hilo_attention_maps(hw, query):
    """LITv2: Hi-Fi heads look only inside the query's window, Lo-Fi heads over pooled windows (every token
    of a window the same); each head's weights sum to 1; the query token's output is what the maps give."""
    torch.manual_seed(0)
    model = LITv2(arch=SMALL_V2, local_ws=(0, 0, 4, 1))
    model.init_weights()
    model.eval()
    captured = {}
    attn = model.stages[2].blocks[0].attn
    attn.register_forward_pre_hook(lambda module, args: captured.setdefault('x', args))
    records = collect_attention_maps(model, torch.randn(1, 3, *hw), query=query)
    assert len(records) == 3 and [r['stage'] for r in records] == [2, 2, 3]
    stage3 = records[0]
    assert stage3['hi_heads'] == 1 and stage3['maps'].shape == (4, hw[0] // 16, hw[1] // 16)
    row, col = query[0] // 16, query[1] // 16
    hi, lo = stage3['maps'][0], stage3['maps'][1:]
    outside = torch.ones_like(hi, dtype=torch.bool)
    outside[row // 4 * 4:row // 4 * 4 + 4, col // 4 * 4:col // 4 * 4 + 4] = False
    assert (hi[outside] == 0).all() and (hi[~outside] > 0).all()
    cell = lo[:, :4, :4]
    assert torch.allclose(cell, cell[:, :1, :1].expand_as(cell))
    if hw == (64, 64):  # the grid is a multiple of the window: each head's weights sum to 1 over it
        total = stage3['maps'].sum((1, 2))
        torch.testing.assert_close(total, torch.ones_like(total))
        # the Lo-Fi heads' output for the query token: the maps' weights applied to the pooled values
        x, grid = captured['x']
        H, W = grid
        pooled = torch.nn.functional.avg_pool2d(x.view(1, H, W, -1).permute(0, 3, 1, 2), 4).flatten(2).transpose(1, 2)
        _, v = attn.lo_kv(pooled).view(1, -1, 2, 3, 8).permute(2, 0, 3, 1, 4)
        weights = lo[:, ::4, ::4].reshape(3, 1, -1) * 16
        expected = attn.lo_proj((weights @ v[0]).transpose(0, 1).reshape(1, 24))
        with torch.no_grad():
            out = attn(x, grid)[0, row * W + col, 8:]
        torch.testing.assert_close(out, expected[0], rtol=1e-4, atol=1e-5)
    assert records[2]['hi_heads'] == 0  # stage 4: window 1, global attention
    torch.testing.assert_close(records[2]['maps'].sum((1, 2)), torch.ones(4))


def test_dtm_offsets_of_litv2():
    model = _with_offsets(LITv2(arch=SMALL_V2), 0.)
    offsets = collect_dtm_offsets(model, torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in offsets] == [(1, 8, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2)]
    assert len(trace_sampling_locations(offsets, 2, (1, 0))) == 64


def test_draw_attention_grid():
    image = mmcv.imread(IMAGE, channel_order='rgb')
    model = LIT(arch=SMALL_S)
    model.init_weights()
    model.eval()
    records = collect_attention_maps(model, torch.randn(1, 3, 64, 64), query=(40, 20))
    canvas = draw_attention_grid(image, records, (150, 60), tile=32)
    assert canvas.shape == (len(records) * (32 + 16), 4 * 32, 3)
    assert canvas.std() > 10


def _run(tool, *args):
    result = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'visualization', tool), *map(str, args)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_visualization_tools_with_an_official_checkpoint(tmp_path):
    """Both tools on the embedded image with LIT-Ti weights in the official layout (random offsets)."""
    model = _with_offsets(LIT(arch='ti', out_type='cls_token', out_indices=(3, )))
    official = tmp_path / 'lit_ti_official.pth'
    torch.save(dict(model=mmlit_to_lit(model.state_dict(), 'ti', classifier=True)), official)

    out = tmp_path / 'offsets.png'
    log = _run('vis_dtm_offsets.py', IMAGE, 'ti', official, '--out', out, '--points', '100,100', '30,190',
               '--scale', '2')
    assert '3 DTM panels, 2 points' in log
    canvas = mmcv.imread(str(out), channel_order='rgb')
    assert canvas.shape == (224 * 2 + 20, 3 * 224 * 2, 3)
    for color in COLORS[:2]:
        assert (canvas == color).all(-1).sum() > 10

    out = tmp_path / 'attention.png'
    log = _run('vis_attention_maps.py', IMAGE, 'ti', official, '--out', out, '--query', '60,150', '--tile', '48')
    assert '9 attention blocks' in log
    grid = mmcv.imread(str(out), channel_order='rgb')
    assert grid.shape == (9 * (48 + 16), 8 * 48, 3)
    assert grid.std() > 10


@pytest.mark.slow
def test_visualization_tool_rejects_a_point_outside_the_image(tmp_path):
    result = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'visualization', 'vis_dtm_offsets.py'),
                             IMAGE, 'ti', '--points', '300,10', '--out', str(tmp_path / 'x.png')],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and 'outside the 224x224 image' in result.stderr
