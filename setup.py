import os.path as osp

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
        'mmengine>=0.10.0,<1.0.0', 'mmcv>=2.0.0,<2.2.0'
    ],
    extras_require={
        'all': parse_requirements('requirements/mminstall.txt') +
        parse_requirements('requirements/optional.txt'),
        'tests': parse_requirements('requirements/tests.txt'),
        'mim': parse_requirements('requirements/mminstall.txt'),
    },
    zip_safe=False)
