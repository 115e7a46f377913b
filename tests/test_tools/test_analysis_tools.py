"""tools/analysis_tools and tools/deployment run and print what they promise (no timings asserted)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# the LIT paper's GFLOPs at 224x224
PAPER_GFLOPS = dict(ti=3.6, s=4.1, m=8.6, b=15.0)


def run_tool(*args, timeout=600):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize('arch', ['ti', 's', 'm', 'b'])
def test_flops_match_the_paper(arch):
    import logging

    from mmengine.logging import MMLogger

    from mmlit_tools.analysis import build_target
    from mmlit_tools.flops import flop_analyzer
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    model = build_target(arch, out_indices=(3, )).eval()
    with torch.no_grad():
        analyzer = flop_analyzer(model, torch.randn(1, 3, 224, 224))
    gflops = analyzer.total() / 1e9
    assert abs(gflops - PAPER_GFLOPS[arch]) / PAPER_GFLOPS[arch] < 0.05, gflops
    by_op = analyzer.by_operator()
    assert by_op['scaled_dot_product_attention'] > 0 and by_op['grid_sampler'] > 0


def test_sdpa_flops_count_both_matmuls():
    import torch.nn.functional as F

    from mmlit_tools.flops import flop_analyzer

    class Attn(torch.nn.Module):

        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q)

    q = torch.randn(2, 3, 10, 8)
    assert flop_analyzer(Attn(), q).total() == 2 * 3 * 10 * 10 * (8 + 8)


@pytest.mark.slow
def test_get_flops_tool_on_arch_and_config():
    out = run_tool('tools/analysis_tools/get_flops.py', 'ti', '--table', '--depth', '1')
    assert 'FLOPs (multiply-adds): 3.62 G' in out and 'Params: 19.37 M' in out and 'stages' in out
    out = run_tool('tools/analysis_tools/get_flops.py', 'configs/toy/retinanet_lit_ti_fpn_toy_shapes.py',
                   '--shape', '128')
    assert 'FLOPs (multiply-adds):' in out and 'Input shape: (1, 3, 128, 128)' in out
    # a classifier: backbone and head (mmpretrain's tensor mode)
    out = run_tool('tools/analysis_tools/get_flops.py', 'configs/lit_ti_8xb128_in1k.py', '--shape', '224')
    assert 'FLOPs (multiply-adds): 3.63 G' in out and 'Params: 19.89 M' in out


@pytest.mark.slow
def test_benchmark_tool(tmp_path):
    out_json = str(tmp_path / 'bench.json')
    out = run_tool('tools/analysis_tools/benchmark.py', 'ti', 'configs/toy/fpn_lit_ti_toy_shapes.py',
                   '--batch', '1', '--shape', '64', '--warmup', '1', '--repeat', '2', '--train', '--ops',
                   '--ops-dtm', '1', '8', '16', '24', '--ops-attn', '1', '2', '6', '8', '8', '--json', out_json)
    assert 'fp32 matmul peak' in out and 'train step' in out and 'peak RSS' in out
    assert 'of the fp32 matmul peak' in out and 'faster' in out
    with open(out_json) as f:
        results = json.load(f)
    assert results['matmul_peak'] > 0
    models = [r for r in results['results'] if 'target' in r]
    ops = [r for r in results['results'] if 'op' in r]
    assert [r['target'] for r in models] == ['ti', 'configs/toy/fpn_lit_ti_toy_shapes.py']
    assert all(r['median'] > 0 and r['rss_peak'] > r['rss_before'] > 0 for r in models)
    for r in models:  # what the JSON says is what was printed
        assert f"{r['page_faults']:.0f} page faults per run" in out
        assert f"median {r['median'] * 1e3:.1f} ms" in out
        assert r['min'] <= r['q1'] <= r['median'] <= r['q3'] <= r['max']
        # the GEMM bound: the step's products replayed alone, as a fraction of the step, as printed
        assert r['gemm_bound_s'] > 0
        assert r['gemm_bound_fraction'] == pytest.approx(r['gemm_bound_s'] / r['median'])
        assert f"alone take {r['gemm_bound_s'] * 1e3:.1f} ms" in out
        assert f"the train step runs at {100 * r['gemm_bound_fraction']:.0f}% of that bound" in out
        assert r['dtype'] == 'fp32' and r['vs_fp32'] is None
    assert 'against float32' not in out
    assert len(ops) == 2
    for r in ops:  # the ratio is the two measured times', as printed
        assert r['ours_s'] > 0 and r['reference_s'] > 0
        assert r['speedup'] == pytest.approx(r['reference_s'] / r['ours_s'])
        assert f"ratio {r['speedup']:.2f}x faster" in out


# A stand-in for a checkout of github.com/ziplab/LITv2, written by the test (no official code is committed):
# its "official" backbone is mmlit's LITv2 behind the official parameter names, built from the official
# constructor arguments, with the checkout's DCN import (which the benchmark must replace).
FAKE_OFFICIAL_LITV2 = '''
import torch
from mm_modules.DCN.modules.deform_conv2d import DeformConv2dPack
from mmdet.registry import MODELS

from mmlit.models import LITv2 as _LITv2
from mmlit.models.utils import lit_to_mmlit, mmlit_to_lit


@MODELS.register_module()
class LITv2(_LITv2):
    def __init__(self, embed_dim, depths, num_heads, mlp_ratio, alpha, local_ws, has_msa, patch_norm,
                 drop_path_rate):
        assert DeformConv2dPack.__module__ == 'mmlit_tools.official'
        arch = dict(embed_dims=[embed_dim * 2**i for i in range(4)], depths=depths, num_heads=num_heads,
                    mlp_ratios=[mlp_ratio] * 4, msa_stages=tuple(i for i in range(4) if has_msa[i]))
        super().__init__(arch=arch, alpha=alpha, local_ws=local_ws, out_indices=(0, 1, 2, 3))

    def state_dict(self, *args, **kwargs):
        return mmlit_to_lit(super().state_dict(*args, **kwargs), layout='litv2')

    def load_state_dict(self, state_dict, strict=True):
        sd = {k[len('backbone.'):]: v for k, v in lit_to_mmlit(dict(state_dict)).items()}
        return super().load_state_dict(sd, strict=strict)

    def named_parameters(self, *args, **kwargs):
        names = mmlit_to_lit(dict(super().named_parameters()), layout='litv2')
        return iter(names.items())
'''


@pytest.mark.slow
def test_benchmark_bf16_against_official_code_and_peers(tmp_path):
    """--dtype bf16 runs the model under bf16 autocast (its outputs are bf16) and prints their deviation from
    fp32; --official runs the official backbone of the arch in its own process with mmlit's weights,
    compares the outputs and prints the measured ratios; --peers times other backbones."""
    checkout = tmp_path / 'LITv2'
    path = checkout / 'detection/mmdet/models/backbones/litv2.py'
    path.parent.mkdir(parents=True)
    path.write_text(FAKE_OFFICIAL_LITV2)
    out_json = str(tmp_path / 'bench.json')
    out = run_tool('tools/analysis_tools/benchmark.py', 'litv2-s', 'ti', '--batch', '1', '--shape', '64',
                   '--warmup', '1', '--repeat', '2', '--dtype', 'bf16', '--official', str(checkout), '--peers',
                   'r18', '--json', out_json)
    assert "no checkout in --official has the official code of 'ti'" in out
    with open(out_json) as f:
        results = {r['target']: r for r in json.load(f)['results']}
    assert list(results) == ['litv2-s', 'official:litv2-s', 'ti', 'peer:r18']
    assert 'ti | inference | batch 1 x 3 x 64 x 64 | bf16' in out
    for target in ('litv2-s', 'ti'):
        r = results[target]
        assert r['out_dtype'] == 'torch.bfloat16'
        # its accuracy against float32, measured on the same weights and inputs, as printed
        acc = r['vs_fp32']
        assert 0 < acc['mean_rel_diff'] < 0.2 and 0 < acc['max_abs_diff'] < acc['max_abs']
        assert f"mean |diff| / mean |output| {acc['mean_rel_diff']:.2%}" in out
    ours, official = results['litv2-s'], results['official:litv2-s']
    assert ours['speedup_vs_official'] == pytest.approx(official['median'] / ours['median'])
    assert ours['memory_vs_official'] == pytest.approx(ours['rss_peak'] / official['rss_peak'])
    assert f"{ours['speedup_vs_official']:.2f}x faster" in out
    # the same function: the same weights went through the official layout and back
    assert ours['max_abs_diff_vs_official'] < 1e-5
    assert f'official:litv2-s ({checkout})' in out
    for target in ('litv2-s', 'ti'):
        ratio = results['peer:r18']['median'] / results[target]['median']
        assert results[target]['speedup_vs_peers'] == pytest.approx(dict(r18=ratio))
        assert f'{target} vs peers (their time / this one\'s): r18 {ratio:.2f}x' in out


@pytest.mark.slow
def test_pytorch2onnx_tool(tmp_path):
    pytest.importorskip('onnxruntime')
    onnx_file = str(tmp_path / 'lit_ti.onnx')
    out = run_tool('tools/deployment/pytorch2onnx.py', 'ti', '--shape', '64', '96', '--out', onnx_file)
    assert osp.getsize(onnx_file) > 1e6
    assert 'onnxruntime vs PyTorch' in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_benchmark_tool_on_cuda(tmp_path):
    out_json = str(tmp_path / 'bench.json')
    out = run_tool('tools/analysis_tools/benchmark.py', 'ti', 's', '--device', 'cuda', '--batch', '2',
                   '--shape', '224', '--warmup', '2', '--repeat', '5', '--ops', '--json', out_json)
    assert 'CUDA max allocated' in out
    with open(out_json) as f:
        results = json.load(f)
    models = [r for r in results['results'] if 'target' in r]
    assert [r['target'] for r in models] == ['ti', 's']
    assert all(r['median'] > 0 and r['cuda_peak'] > 0 for r in models)


@pytest.mark.slow
def test_benchmark_backends(tmp_path):
    """--backends: one export, every runtime timed, outputs compared with PyTorch float32 as printed."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('openvino')
    from mmlit.utils.compat import onnx_has_dynamo_exporter
    if not onnx_has_dynamo_exporter():
        pytest.skip('whole-model export needs torch >= 2.5')
    out_json = str(tmp_path / 'bench.json')
    out = run_tool('tools/analysis_tools/benchmark.py', 'ti', 'configs/toy/retinanet_lit_ti_fpn_toy_shapes.py',
                   '--batch', '1', '--shape', '64', '96', '--warmup', '1', '--repeat', '2', '--threads', '2',
                   '--backends', 'torch-bf16', 'onnxruntime', 'openvino', 'openvino-bf16', '--json', out_json)
    assert 'bf16 matmul peak' in out
    with open(out_json) as f:
        rows = json.load(f)['results']
    names = ['torch', 'torch-bf16', 'onnxruntime', 'openvino', 'openvino-bf16']
    assert [(r['target'], r['backend']) for r in rows] == [
        (t, b) for t in ('ti', 'configs/toy/retinanet_lit_ti_fpn_toy_shapes.py') for b in names]
    for r in rows:
        assert f"{r['backend']:14s} median {r['median'] * 1e3:8.1f} ms" in out
        if r['backend'] == 'torch':
            assert 'speedup' not in r and r['gemm_bound_s'] > 0
            reference = r
            continue
        assert r['speedup'] == pytest.approx(reference['median'] / r['median'])
        dev = r['vs_fp32']
        fp32 = not r['backend'].endswith('bf16')
        if r['target'] == 'ti':  # the backbone's four feature maps, same shapes everywhere
            assert dev['max_abs'] > 0
            assert dev['max_abs_diff'] < (1e-3 if fp32 else 0.1) * dev['max_abs'], r
        else:  # detections matched with the same code as --verify; float32 runtimes find them all
            assert dev['detections'] > 0
            if fp32:
                assert dev['matched'] == 1 and dev['box'] < 1e-2 and dev['score'] < 1e-4, r
    # the attention kernels' share of the matmul peak of their dtype
    assert 'of the bf16 matmul peak' in out and 'of the fp32 matmul peak' in out


def test_benchmark_backends_refuse_what_they_do_not_time():
    proc = subprocess.run([sys.executable, 'tools/analysis_tools/benchmark.py', 'ti', '--backends', 'onnxruntime',
                           '--train'], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and 'leave out --train' in proc.stderr
