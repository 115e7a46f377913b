"""mmlit through OpenMMLab's ``mim`` (openmim), installed the way users install it: from a wheel.

setup.py copies configs/, tools/, demo/ and model-index.yml into ``mmlit/.mim`` for wheels and sdists
(symlinks them for editable installs), where ``mim train/test/run/search mmlit`` look for them. Here a
wheel is built from a copy of this tree, installed into a fresh virtual environment, and mim's commands
run in it from a directory outside the repository, so that everything they use comes from the wheel.

The virtual environment has no site packages of its own but for the wheel's mmlit: a ``.pth`` file puts
the directories of this interpreter's ``sys.path`` (torch, mmcv, mmdet, mim, ...) after them, minus this
repository. Those directories are *not* processed as site directories, so their own ``.pth`` files do
not run, and the hook of an editable mmlit install (``__editable__.mmlit-*.pth`` with its meta-path
finder, or a path entry for the repository) is never installed there: ``import mmlit`` can only find
the wheel's copy, which the tests check.
"""
import importlib.util
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import venv
import zipfile

import pytest
import torch
import yaml

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_CONFIG = 'mask_rcnn_lit_ti_fpn_toy_shapes.py'  # a bare name: mim finds it in mmlit/.mim/configs
FIXTURE = osp.join(ROOT, 'tests', 'data', 'official_lit_small.pth')

pytestmark = pytest.mark.slow  # builds a wheel and a virtualenv, runs mim's commands end to end

# what mim needs from mmlit/.mim, and the kinds of files MANIFEST.in ships from each original
MIM_SOURCES = {'configs': ('.py', '.yml'), 'tools': ('.py', '.sh'), 'demo': ('.py', '.png')}
# what a build of mmlit reads (the rest of the checkout, virtualenvs and data included, is not copied)
BUILD_INPUTS = ('setup.py', 'setup.cfg', 'pyproject.toml', 'MANIFEST.in', 'README.md', 'LICENSE', 'requirements',
                'mmlit', 'configs', 'tools', 'demo', 'model-index.yml')


def _clean_env(**extra):
    """The environment for commands in the venv: nothing that could put the repository on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP')}
    env.update(PYTHONNOUSERSITE='1', OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'), **extra)
    return env


def _run(args, cwd, timeout=600, check=True):
    result = subprocess.run([str(a) for a in args], cwd=str(cwd), env=_clean_env(), capture_output=True,
                            text=True, timeout=timeout)
    log = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, f'{args} failed ({result.returncode}):\n{log[-6000:]}'
    return log


def _expected_mim_files():
    """mmlit/.mim/... for every file mim may need from configs/, tools/, demo/ and model-index.yml."""
    expected = {'mmlit/.mim/model-index.yml'}
    for top, suffixes in MIM_SOURCES.items():
        for dirpath, dirnames, filenames in os.walk(osp.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d != '__pycache__']
            for name in filenames:
                if name.endswith(suffixes):
                    rel = osp.relpath(osp.join(dirpath, name), ROOT).replace(os.sep, '/')
                    expected.add(f'mmlit/.mim/{rel}')
    return expected


@pytest.fixture(scope='module')
def source_copy(tmp_path_factory):
    """A copy of the tree to build from: building in place would rewrite mmlit/.mim of the checkout,
    whose editable install has symlinks there."""
    src = tmp_path_factory.mktemp('mim_build') / 'mmlit-src'
    src.mkdir()
    ignore = shutil.ignore_patterns('__pycache__', '*.py[cod]', '.mim')
    for name in BUILD_INPUTS:
        path = osp.join(ROOT, name)
        if osp.isdir(path):
            shutil.copytree(path, src / name, ignore=ignore)
        elif osp.isfile(path):
            shutil.copy2(path, src / name)
    return src


@pytest.fixture(scope='module')
def wheel(source_copy):
    dist = source_copy.parent / 'dist'
    _run([sys.executable, '-m', 'pip', 'wheel', '.', '--no-deps', '--no-build-isolation', '--no-index',
          '--disable-pip-version-check', '-w', dist], cwd=source_copy)
    wheels = list(dist.glob('mmlit-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_carries_what_mim_needs(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        model_index = zf.read('mmlit/.mim/model-index.yml').decode()
        metafile = zf.read('mmlit/.mim/configs/metafile.yml').decode()
    for required in ('mmlit/.mim/configs/toy/' + TOY_CONFIG, 'mmlit/.mim/configs/metafile.yml',
                     'mmlit/.mim/tools/train.py', 'mmlit/.mim/tools/test.py', 'mmlit/.mim/tools/dist_train.sh',
                     'mmlit/.mim/tools/model_converters/lit2mmlit.py', 'mmlit/.mim/model-index.yml',
                     'mmlit/.mim/demo/image_demo.py', 'mmlit/.mim/demo/demo.png', 'mmlit/__init__.py'):
        assert required in names, f'{required} is not in the wheel'
    missing = _expected_mim_files() - names
    assert not missing, f'not in the wheel (MANIFEST.in?): {sorted(missing)}'
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    # copies of the originals, not links or stale files
    assert model_index == open(osp.join(ROOT, 'model-index.yml'), encoding='utf-8').read()
    assert metafile == open(osp.join(ROOT, 'configs', 'metafile.yml'), encoding='utf-8').read()
    # the originals are data of mmlit, never top-level packages of their own
    assert not [n for n in names if n.split('/')[0] in ('configs', 'tools', 'demo', 'tests')]


def test_sdist_carries_what_mim_needs_into_its_wheel(source_copy, tmp_path):
    """``python setup.py sdist`` ships the copies (MANIFEST.in), and a wheel built from the sdist, where
    the originals are absent, keeps them."""
    _run([sys.executable, 'setup.py', '-q', 'sdist', '-d', tmp_path / 'sdist'], cwd=source_copy)
    sdists = list((tmp_path / 'sdist').glob('mmlit-*.tar.gz'))
    assert len(sdists) == 1, sdists
    _run([sys.executable, '-m', 'pip', 'wheel', sdists[0], '--no-deps', '--no-build-isolation', '--no-index',
          '--disable-pip-version-check', '-w', tmp_path / 'dist'], cwd=tmp_path)
    with zipfile.ZipFile(next((tmp_path / 'dist').glob('mmlit-*.whl'))) as zf:
        names = set(zf.namelist())
    missing = _expected_mim_files() - names
    assert not missing, f'not in the wheel built from the sdist: {sorted(missing)}'


def _base_paths():
    """This interpreter's import path (stdlib, site-packages with torch, mmcv, mim...) minus the checkout
    (the repository and its tests, which pytest puts there); a virtualenv inside the checkout stays."""
    paths = []
    for entry in sys.path:
        path = osp.abspath(entry or os.getcwd())
        in_checkout = path == ROOT or path.startswith(ROOT + os.sep)
        if in_checkout and osp.basename(path) not in ('site-packages', 'dist-packages'):
            continue
        if not osp.isdir(path) or '__editable__' in path or path in paths:
            continue
        paths.append(path)
    return paths


@pytest.fixture(scope='module')
def mim_env(wheel, tmp_path_factory):
    """(python of a venv with the wheel's mmlit, site-packages of the venv, a working dir outside the repo)."""
    if importlib.util.find_spec('mim') is None:
        pytest.skip('openmim is not installed (`mim` cannot be imported): pip install -r requirements/tests.txt')
    base = tmp_path_factory.mktemp('mim_venv')
    env_dir = base / 'venv'
    venv.EnvBuilder(with_pip=False, system_site_packages=False, symlinks=os.name != 'nt').create(env_dir)
    python = env_dir / ('Scripts' if os.name == 'nt' else 'bin') / ('python.exe' if os.name == 'nt' else 'python')
    site_packages = osp.realpath(_run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                                      base).strip().splitlines()[-1])  # nothing is imported: no warnings
    # plain path lines: the base directories are importable, but their .pth files (editable hooks) never run
    with open(osp.join(site_packages, '_mmlit_test_base_paths.pth'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(_base_paths()) + '\n')
    # --ignore-installed: pip sees the base environment's (editable) mmlit too, and must leave it alone
    _run([python, '-m', 'pip', 'install', '--no-deps', '--no-index', '--ignore-installed',
          '--disable-pip-version-check', '--no-warn-script-location', wheel], base)

    workdir = base / 'work'
    workdir.mkdir()
    probe = ('import os.path as osp, mmlit\n'
             'from mim.utils import get_installed_path\n'
             'print("module:", osp.realpath(mmlit.__file__))\n'
             'print("mim:", osp.realpath(get_installed_path("mmlit")))\n')
    found = dict(line.split(': ', 1) for line in _run([python, '-c', probe], workdir).splitlines()
                 if line.startswith(('module: ', 'mim: ')))
    module_file, installed_path = found['module'], found['mim']
    assert module_file == osp.join(site_packages, 'mmlit', '__init__.py'), \
        f'the venv imports mmlit from {module_file}, not from the wheel in {site_packages}'
    assert installed_path == osp.join(site_packages, 'mmlit'), f'mim sees mmlit at {installed_path}'
    assert osp.isfile(osp.join(installed_path, '.mim', 'tools', 'train.py'))
    return python, site_packages, workdir


def _mim(mim_env, *args, timeout=600):
    python, _, workdir = mim_env
    return _run([python, '-m', 'mim', *args], workdir, timeout=timeout)


def test_mim_search_lists_the_model_index(mim_env):
    with open(osp.join(ROOT, 'configs', 'metafile.yml'), encoding='utf-8') as f:
        models = [m['Name'] for m in yaml.safe_load(f)['Models']]
    log = _mim(mim_env, 'search', 'mmlit')
    listed = re.findall(r'^config id: (\S+)$', log, flags=re.M)
    assert listed == models, f'`mim search mmlit` lists {listed}, configs/metafile.yml has {models}'
    assert 'configs/toy/mask_rcnn_lit_ti_fpn_toy_shapes.py' in log
    # the model index can be queried: one config, one field
    log = _mim(mim_env, 'search', 'mmlit', '--config', 'mask_rcnn_lit_ti_fpn_1x_coco', '--field', 'weight')
    assert re.findall(r'^config id: (\S+)$', log, flags=re.M) == ['mask_rcnn_lit_ti_fpn_1x_coco'], log[-4000:]
    assert re.search(r'^weight\s+https://\S+/mask_rcnn_lit_ti', log, flags=re.M), log[-4000:]


def test_mim_run_lit2mmlit_converts_an_official_checkpoint(mim_env, tmp_path):
    from mmlit.models.utils import lit_to_mmlit
    _, site_packages, _ = mim_env
    official = torch.load(FIXTURE)['ti_cls']['checkpoint']  # an ImageNet classifier, under 'model'
    src, dst = tmp_path / 'lit_ti.pth', tmp_path / 'lit_ti_mmlit.pth'
    torch.save(official, src)
    log = _mim(mim_env, 'run', 'mmlit', 'lit2mmlit', src, dst)
    script = osp.join(site_packages, 'mmlit', '.mim', 'tools', 'model_converters', 'lit2mmlit.py')
    assert f'Use the script {script} for command lit2mmlit' in log, log[-4000:]
    assert 'Converted' in log and str(dst) in log
    converted = torch.load(dst)
    expected = lit_to_mmlit(official)
    assert set(converted['state_dict']) == set(expected)
    assert any(k.startswith('backbone.') for k in expected) and any(k.startswith('head.') for k in expected)
    for key, value in expected.items():
        assert torch.equal(converted['state_dict'][key], value), key
    assert converted['meta']['converted_from'] == str(src)


def test_mim_train_then_test_the_toy_config(mim_env):
    """`mim train` / `mim test` with a bare config name: the config, tools/train.py and tools/test.py all
    come from the wheel's mmlit/.mim; the toy data is generated in the working dir (outside the repo)."""
    python, site_packages, workdir = mim_env
    mim_root = osp.join(site_packages, 'mmlit', '.mim')
    config = osp.join(mim_root, 'configs', 'toy', TOY_CONFIG)
    work_dir = workdir / 'mask_rcnn_toy'
    # 8 training images, 2 iterations, no validation during training: as tests/test_tools' toy runs
    log = _mim(mim_env, 'train', 'mmlit', TOY_CONFIG, '--gpus', '0', '--work-dir', work_dir, '--cfg-options',
               'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=8', 'train_cfg.val_interval=100',
               'default_hooks.logger.interval=1')
    assert f'will use {config} instead' in log, log[-4000:]
    command = re.search(r'^Training command is (.*)$', log, flags=re.M)
    assert command, log[-4000:]
    assert command.group(1).split()[:3] == [str(python), osp.join(mim_root, 'tools', 'train.py'), config]
    assert re.search(r'Epoch\(train\)\s+\[1\]\[2/2\]', log), log[-4000:]
    checkpoint = work_dir / 'epoch_1.pth'
    assert checkpoint.exists(), log[-4000:]
    assert (workdir / 'data' / 'toy_shapes' / 'annotations' / 'instances_train.json').exists()

    log = _mim(mim_env, 'test', 'mmlit', TOY_CONFIG, '--checkpoint', checkpoint, '--gpus', '0', '--work-dir',
               work_dir / 'test', '--cfg-options', 'test_dataloader.dataset.indices=4')
    assert f'will use {config} instead' in log, log[-4000:]
    command = re.search(r'^Testing command is (.*)$', log, flags=re.M)
    assert command, log[-4000:]
    assert command.group(1).split()[1:4] == [osp.join(mim_root, 'tools', 'test.py'), config, str(checkpoint)]
    for metric in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert re.search(re.escape(metric) + r': -?\d', log), f'{metric} missing from the test log:\n{log[-4000:]}'
    assert 'Testing finished successfully' in log, log[-4000:]
