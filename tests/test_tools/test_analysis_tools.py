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

    from mmlit.utils.analysis import build_target
    from mmlit.utils.flops import flop_analyzer
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

    from mmlit.utils.flops import flop_analyzer

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
    assert len(ops) == 2
    for r in ops:  # the ratio is the two measured times', as printed
        assert r['ours_s'] > 0 and r['reference_s'] > 0
        assert r['speedup'] == pytest.approx(r['reference_s'] / r['ours_s'])
        assert f"ratio {r['speedup']:.2f}x faster" in out


@pytest.mark.slow
def test_benchmark_inference_bf16(tmp_path):
    """--dtype bf16 really runs the model under bf16 autocast (its outputs are bf16), fp32 does not."""
    dtypes = {}
    for dtype in ('bf16', 'fp32'):
        out_json = str(tmp_path / f'{dtype}.json')
        out = run_tool('tools/analysis_tools/benchmark.py', 's', '--batch', '1', '--shape', '64', '--warmup', '1',
                       '--repeat', '2', '--dtype', dtype, '--json', out_json)
        assert f's | inference | batch 1 x 3 x 64 x 64 | {dtype}' in out
        with open(out_json) as f:
            (result, ) = json.load(f)['results']
        dtypes[dtype] = result['out_dtype']
    assert dtypes == dict(bf16='torch.bfloat16', fp32='torch.float32')


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
