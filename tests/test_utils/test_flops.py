"""FLOP counts of the LIT family against the papers' tables (multiply-adds at 224x224)."""
import pytest

from mmlit_tools.flops import analyse_target, count_params


@pytest.mark.parametrize('target,gflops,params', [
    ('litv2-s', 3.7, 27.1), ('litv2-m', 7.5, 48.1), ('litv2-b', 13.2, 85.5),
])
def test_litv2_flops_match_the_paper(target, gflops, params):
    """LITv2-S/M/B: 3.7 / 7.5 / 13.2 G in the paper; both HiLo branches (Hi-Fi window attention and
    Lo-Fi pooled attention; through SDPA, or as two matmuls where the CPU fast path takes them) are
    counted."""
    analyzer, model = analyse_target(target, (224, 224))
    assert round(analyzer.total() / 1e9, 1) == gflops
    per_module = analyzer.by_module_and_operator()
    name = next(n for n in per_module if n.endswith('stages.2.blocks.0.attn'))
    counts = per_module[name]
    assert counts.get('linear', 0) > 0  # the projections, counted apart from the attention
    hilo = counts.get('scaled_dot_product_attention', 0) + counts.get('matmul', 0)
    # stage 3 HiLo at 224: 14x14 tokens; Hi-Fi 2 heads over 49 windows of 4 tokens, Lo-Fi heads over 49
    # pooled keys: (2 * 49 * 4 * 4 + heads_lo * 196 * 49) * 2 * 32
    heads = model.arch_settings['num_heads'][2]
    lo = model.stages[2].blocks[0].attn.lo_heads
    assert hilo == ((heads - lo) * 49 * 4 * 4 + lo * 196 * 49) * 2 * 32
    assert round(count_params(model) / 1e6, 1) == params
