"""mmlit's version: ``__version__`` (a string) and ``version_info`` (a tuple of its parts)."""
__version__ = '0.1.0'


def _parse_version_info(version_str: str) -> tuple:
    """Split a version string at its dots; numeric parts become ints.

    ``'0.1.0'`` gives ``(0, 1, 0)``, ``'1.0.rc1'`` gives ``(1, 0, 'rc1')``.
    """
    return tuple(int(x) if x.isdigit() else x for x in version_str.split('.'))


version_info = _parse_version_info(__version__)
