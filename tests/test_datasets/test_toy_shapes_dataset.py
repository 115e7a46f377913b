"""mmlit.ToyShapes: the toy configs' datasets generate their data, from any package's registry."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DATASETS, init_default_scope

from toy_runs import TOY

CASES = [  # config, scope, what the inner dataset is, a file that must have been generated
    ('mask_rcnn_lit_ti_fpn_toy_shapes.py', 'mmdet', 'CocoDataset', 'annotations/instances_train.json'),
    ('fpn_lit_ti_toy_shapes.py', 'mmseg', 'BaseSegDataset', 'seg_maps/train/000000.png'),
    ('lit_ti_toy_shapes_cls.py', 'mmpretrain', 'CustomDataset', 'meta/train.txt'),
]


@pytest.mark.parametrize('config,scope,dataset_type,generated', CASES)
def test_toy_config_datasets_generate_their_data(config, scope, dataset_type, generated, tmp_path, monkeypatch):
    pytest.importorskip(scope)
    monkeypatch.chdir(tmp_path)  # the configs' data root is relative: data/toy_shapes/
    cfg = Config.fromfile(osp.join(TOY, config))
    assert cfg.train_dataloader.dataset.type == 'mmlit.ToyShapes'
    assert cfg.test_dataloader.dataset.pipeline  # where the upstream inferencers read it
    assert not (tmp_path / 'data').exists()
    init_default_scope(scope)
    # short runs select images, as --cfg-options train_dataloader.dataset.indices=8 does
    train = DATASETS.build(dict(cfg.train_dataloader.dataset, indices=8))
    assert type(train).__name__ == dataset_type and len(train) == 8
    assert (tmp_path / 'data' / 'toy_shapes' / generated).exists()
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert type(val).__name__ == dataset_type and len(val) == 24
    assert val[0]['inputs'].shape[-2:] == (128, 128)
    with pytest.raises(TypeError):
        DATASETS.build(dict(cfg.train_dataloader.dataset, no_such_option=1))
    with pytest.raises(ValueError, match='root= or data_root='):
        DATASETS.build(dict(type='mmlit.ToyShapes', dataset_type=dataset_type))
