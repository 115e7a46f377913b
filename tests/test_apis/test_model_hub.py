"""mmlit's classifiers in mmpretrain's model hub, and the authors' checkpoints through ``official-lit+``
in mmpretrain's ``get_model`` and mmdet's / mmseg's inferencers (files written here in the official
layout from random models: nothing is downloaded)."""
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

import mmlit  # noqa: F401  (registers the scheme and the model hub)
from mmlit.apis import OFFICIAL_PREFIX
from mmlit.models.utils import mmlit_to_lit

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'demo', 'demo.png')
CLASSIFIERS = ['lit-ti_8xb128_in1k', 'lit-s_8xb128_in1k', 'lit-m_8xb128_in1k', 'lit-b_8xb128_in1k',
               'litv2-s_8xb128_in1k', 'litv2-m_8xb128_in1k', 'litv2-b_8xb128_in1k']

mmpretrain = pytest.importorskip('mmpretrain')


def official_layout(model, layout, classifier=False):
    """``model``'s weights as the authors' code saves them."""
    state = model.state_dict()
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    official = mmlit_to_lit(backbone, layout, classifier=classifier)
    if classifier:  # the official ImageNet checkpoints: {'model': ...}, the head as head.*
        official.update({'head.' + k[len('head.fc.'):]: v for k, v in state.items() if k.startswith('head.fc.')})
        return dict(model=official)
    out = {f'backbone.{k}': v for k, v in official.items()}
    out.update({k: v for k, v in state.items() if not k.startswith('backbone.')})
    return dict(state_dict=out, meta=dict(mmdet_version='2.11.0'))


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def test_list_models_finds_the_classifiers_only():
    assert sorted(mmpretrain.list_models('*lit*')) == sorted(CLASSIFIERS)
    from mmpretrain.apis import ModelHub
    meta = ModelHub.get('lit-ti_8xb128_in1k')
    assert meta.weights == OFFICIAL_PREFIX + 'https://github.com/ziplab/LIT/releases/download/v1.0/lit_ti.pth'
    assert meta.config.model.backbone.type == 'mmlit.LIT'


@pytest.mark.parametrize('name,layout', [('lit-ti_8xb128_in1k', 'ti'), ('litv2-s_8xb128_in1k', 'litv2')])
def test_get_model_loads_an_official_checkpoint(tmp_path, name, layout):
    torch.manual_seed(0)
    reference = mmpretrain.get_model(name)
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_()
    path = str(tmp_path / 'official.pth')
    torch.save(official_layout(reference, layout, classifier=True), path)
    loaded = mmpretrain.get_model(name, pretrained=OFFICIAL_PREFIX + path)
    assert_same_weights(loaded, reference)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), reference.eval()(x))


def test_inferencers_run_configs_with_official_weights(tmp_path):
    from mmdet.apis import DetInferencer
    from mmseg.apis import MMSegInferencer

    from mmlit_tools.analysis import build_target
    for config, inferencer in ((osp.join(ROOT, 'configs', 'mask_rcnn_lit_ti_fpn_1x_coco.py'), DetInferencer),
                               (osp.join(ROOT, 'configs', 'fpn_lit_ti_512x512_80k_ade20k.py'), MMSegInferencer)):
        torch.manual_seed(1)
        reference = build_target(config)
        path = str(tmp_path / f'{osp.basename(config)}.pth')
        torch.save(official_layout(reference, 'ti'), path)
        runner = inferencer(model=config, weights=OFFICIAL_PREFIX + path, device='cpu')
        assert_same_weights(runner.model, reference)
        result = runner(DEMO, return_datasamples=True)
        # mmdet: a dict of lists; mmseg: the data sample itself
        sample = result['predictions'][0] if isinstance(result, dict) else result
        assert 'pred_instances' in sample or 'pred_sem_seg' in sample


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize('order', ['mmlit first', 'mmpretrain first'])
def test_the_hub_finds_mmlit_whichever_is_imported_first(order):
    """``import mmlit`` leaves mmpretrain unloaded, and ``list_models`` finds the classifiers whether
    mmpretrain is imported after mmlit (the import hook) or before it (registered at once)."""
    first, second = ('mmlit', 'mmpretrain') if order == 'mmlit first' else ('mmpretrain', 'mmlit')
    proc = _run(f"""
        import sys
        import {first}
        print('mmpretrain.apis' in sys.modules)
        import {second}
        import mmpretrain
        print(len(mmpretrain.list_models('*lit*_in1k')))
    """)
    assert proc.returncode == 0, proc.stderr
    loaded, found = proc.stdout.split()
    assert loaded == ('False' if order == 'mmlit first' else 'True')
    assert int(found) == len(CLASSIFIERS)


def test_a_name_taken_by_another_package_warns_and_mmlit_still_imports(tmp_path):
    """Another package registered ``lit-ti_8xb128_in1k`` first: theirs stays, ``import mmlit`` warns
    with the way out and does not fail."""
    index = tmp_path / 'model-index.yml'
    index.write_text(yaml.safe_dump(dict(Models=[dict(Name='lit-ti_8xb128_in1k', Config=DEMO)])))
    proc = _run(f"""
        import warnings
        from mmpretrain.apis import ModelHub
        ModelHub.register_model_index({str(index)!r})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            import mmlit
        print([str(w.message) for w in caught if 'model hub' in str(w.message)])
        print(ModelHub._models_dict['lit-ti_8xb128_in1k'].config)
    """)
    assert proc.returncode == 0, proc.stderr
    warned, config = proc.stdout.strip().splitlines()
    assert 'lit-ti_8xb128_in1k' in warned and 'config paths' in warned
    assert config == DEMO
