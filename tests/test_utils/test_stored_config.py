"""mmlit.utils.parse_stored_config: the config a checkpoint stores, read as data."""
import pytest
from mmengine.config import Config

from mmlit.utils import StoredConfigError, parse_stored_config


def test_reads_what_pretty_text_writes():
    cfg = Config(dict(model=dict(type='RetinaNet', backbone=dict(type='mmlit.LIT', arch='ti', out_indices=(1, 2, 3)),
                                 values=[1, -2.5, 1e-4, None, True], odd={'a-b': 1}),
                      custom_imports=dict(imports=['mmlit'], allow_failed_imports=False), gpu_ids=[0, 1]))
    text = cfg.pretty_text
    parsed = parse_stored_config(text)
    assert parsed.to_dict() == Config.fromstring(text, file_format='.py').to_dict()
    assert parsed.gpu_ids == [0, 1]


@pytest.mark.parametrize('text', [
    "a = 1\n_x = __import__('os').system('true')\n",
    'import os\n',
    "a = dict(type=print('x'))\n",
    'a = [x for x in ()]\n',
    "a = (lambda: 0)()\n",
    "a = 'x'.join([])\n",
    'a = dict(**b)\n',
    'a = b = 1\n',
    'a.b = 1\n',
    'a = 1 +\n',
])
def test_refuses_anything_but_plain_data(text):
    with pytest.raises(StoredConfigError):
        parse_stored_config(text)
