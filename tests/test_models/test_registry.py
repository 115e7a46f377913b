"""``import mmlit`` / ``custom_imports`` registration, without importing mmdet/mmseg/mmpretrain."""
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _run(code):
    result = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_needs_only_torch_mmengine_mmcv():
    out = _run("""
        import sys
        import mmlit
        print(sorted(m for m in ('mmdet', 'mmseg', 'mmpretrain') if m in sys.modules))
    """)
    assert out.strip() == '[]'


@pytest.mark.parametrize('scope,base', [
    ('mmdet', 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'),
    ('mmseg', 'mmseg::_base_/models/fpn_r50.py'),
    ('mmpretrain', 'mmpretrain::_base_/models/resnet50.py'),
])
def test_custom_imports_in_a_foreign_config(tmp_path, scope, base):
    """A config of another package builds LIT through ``custom_imports`` alone, in a fresh process."""
    pytest.importorskip(scope)
    cfg = tmp_path / 'foreign_config.py'
    cfg.write_text(textwrap.dedent(f"""
        _base_ = ['{base}']
        custom_imports = dict(imports=['mmlit'], allow_failed_imports=False)
        default_scope = '{scope}'
        model = dict(backbone=dict(_delete_=True, type='LIT', arch='ti', out_indices=(3, )))
    """))
    out = _run(f"""
        import sys
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        assert 'mmlit' not in sys.modules
        cfg = Config.fromfile({str(cfg)!r})  # imports what custom_imports names
        assert 'mmlit' in sys.modules
        init_default_scope(cfg.default_scope)
        from {scope}.registry import MODELS
        backbone = MODELS.build(cfg.model.backbone)
        print(type(backbone).__module__, type(backbone).__name__)
    """)
    assert out.split()[-2:] == ['mmlit.models.backbones.lit', 'LIT']


def test_import_mmlit_imports_what_configs_need_only():
    """``import mmlit`` (what ``custom_imports`` runs) loads neither the tools' helpers nor the figures, and
    mmlit.utils does not reach up into mmlit.models."""
    import subprocess
    import sys
    code = ('import sys, mmlit; import mmlit.utils; '
            'print(sorted(m for m in sys.modules if m.startswith(("mmlit_tools", "mmlit.visualization"))))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]', out
    import ast
    import pathlib
    utils = pathlib.Path(__file__).parents[2] / 'mmlit' / 'utils'
    for path in utils.glob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or '').startswith(('mmlit.models', 'models')), (path.name, node.module)
