import os
import os.path as osp
import platform
import shutil
import sys
import warnings

from setuptools import find_packages, setup


def readme() -> str:
    with open(osp.join(osp.dirname(__file__), 'README.md'), encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmlit', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'mmlit/version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Requirement lines of a file under requirements/, following ``-r`` includes."""
    path = osp.join(osp.dirname(__file__), fname)
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                out += parse_requirements(osp.join(osp.dirname(fname), line[3:].strip()))
            else:
                out.append(line)
    return out


def add_mim_extension() -> None:
    """Put what OpenMMLab's ``mim`` needs (configs, tools, demo, model index) into ``mmlit/.mim``.

    As mmdet 3.x does: symlinks to the originals for an editable install (``pip install -e .``: the
    ``develop`` command, or ``editable_wheel`` for PEP 660), so edits show up at once; copies for a wheel
    or a source distribution (``pip install .``, ``pip wheel .``, ``python setup.py sdist``), which
    MANIFEST.in then ships. ``mim train/test/run/search mmlit`` look there. Nothing happens for other
    commands (``egg_info``, ``dist_info``), and nothing is removed where an original is absent: building
    a wheel from the sdist keeps the sdist's copies.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'copy' if platform.system() == 'Windows' else 'symlink'  # symlinks can fail on Windows
    elif 'sdist' in sys.argv or 'bdist_wheel' in sys.argv:
        mode = 'copy'
    else:
        return

    repo_path = osp.dirname(osp.abspath(__file__))
    mim_path = osp.join(repo_path, 'mmlit', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in ('configs', 'tools', 'demo', 'model-index.yml'):
        src_path = osp.join(repo_path, name)
        tar_path = osp.join(mim_path, name)
        if not osp.exists(src_path):
            continue
        if osp.islink(tar_path) or osp.isfile(tar_path):
            os.remove(tar_path)
        elif osp.isdir(tar_path):
            shutil.rmtree(tar_path)
        if mode == 'symlink':
            os.symlink(osp.relpath(src_path, osp.dirname(tar_path)), tar_path)
        elif osp.isfile(src_path):
            shutil.copyfile(src_path, tar_path)
        elif osp.isdir(src_path):
            shutil.copytree(src_path, tar_path, ignore=shutil.ignore_patterns('__pycache__', '*.py[cod]'))
        else:
            warnings.warn(f'Cannot copy {src_path}.')


add_mim_extension()

setup(
    name='mmlit',
    version=get_version(),
    description='LIT (Less is More: Pay Less Attention in Vision Transformers) backbones for OpenMMLab 2.x',
    long_description=readme(),
    long_description_content_type='text/markdown',
    keywords='computer vision, vision transformer, object detection, semantic segmentation, openmmlab',
    packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests')),
    include_package_data=True,
    python_requires='>=3.8',
    license='Apache License 2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'License :: OSI Approved :: Apache Software License',
        'Operating System :: OS Independent',
    ],
    # torch, mmengine and mmcv are needed to import mmlit; mmdet/mmseg/mmpretrain only for their tasks.
    install_requires=parse_requirements('requirements/runtime.txt') + [
        'mmengine>=0.10.2,<1.0.0', 'mmcv>=2.1.0,<2.2.0'
    ],
    extras_require={
        'all': parse_requirements('requirements/mminstall.txt') +
        parse_requirements('requirements/optional.txt'),
        'tests': parse_requirements('requirements/tests.txt'),
        'mim': parse_requirements('requirements/mminstall.txt'),
    },
    zip_safe=False)
