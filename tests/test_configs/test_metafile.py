"""model-index.yml / configs/metafile.yml: every config listed, every listed config present, the numbers
consistent with the models the configs build."""
import glob
import os.path as osp

import pytest
import yaml

from mmlit_tools.analysis import build_target
from mmlit_tools.flops import count_params

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _models():
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    models = []
    for path in index['Import']:
        assert osp.isfile(osp.join(ROOT, path)), f'model-index.yml imports a missing {path}'
        with open(osp.join(ROOT, path)) as f:
            meta = yaml.safe_load(f)
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections
            models.append(model)
    return models


MODELS = _models()
PUBLISHED = [m for m in MODELS if 'Weights' in m]


def test_every_config_is_listed_and_every_listed_config_exists():
    listed = [m['Config'] for m in MODELS]
    assert len(listed) == len(set(listed)), 'a config is listed twice'
    for config in listed:
        assert osp.isfile(osp.join(ROOT, config)), f'metafile names a missing config {config}'
    on_disk = {osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)}
    assert on_disk == set(listed), f'not in configs/metafile.yml: {sorted(on_disk - set(listed))}'
    assert len({m['Name'] for m in MODELS}) == len(MODELS)


def test_published_models_carry_paper_metrics_and_official_weights():
    # LIT: 4 ImageNet classifiers, 4 detectors, 2 segmentors; LITv2: 3 classifiers, 12 detectors (window 2
    # and 4), 3 segmentors
    assert len(PUBLISHED) == 10 + 18
    for model in PUBLISHED:
        release = 'LITv2' if model['In Collection'] == 'LITv2' else 'LIT'
        assert model['Weights'].startswith(f'https://github.com/ziplab/{release}/releases/download/')
        assert model['Weights'].endswith('.pth')
        for result in model['Results']:
            assert result['Task'] and result['Dataset']
            assert all(0 < value < 100 for value in result['Metrics'].values())
        assert model['Metadata']['FLOPs'] > 1e9


@pytest.mark.parametrize('model', PUBLISHED, ids=[m['Name'] for m in PUBLISHED])
def test_parameters_match_the_built_model(model):
    built = build_target(osp.join(ROOT, model['Config']))
    params = count_params(built)
    assert abs(params - model['Metadata']['Parameters']) / params < 0.005, (params, model['Metadata'])
