"""The config a checkpoint stores, read as data: never executed, never importing what it names.

MMEngine writes the training config into every checkpoint (``meta['config']`` and the message hub's
``runtime_info['cfg']``) as the Python text of ``Config.pretty_text``, and reads it back with
``Config.fromstring(..., file_format='.py')``, which executes it (and imports its ``custom_imports``):
``Runner.resume`` (for its check of the number of GPUs) and the inferencers given ``model=None`` (to build
the model). A checkpoint from someone else would run their code there. :func:`parse_stored_config` reads
such text as data instead: assignments of literals, lists, tuples, dicts and ``dict(...)`` calls, which is
all ``pretty_text`` writes; anything else raises :class:`StoredConfigError`.
"""
import ast
import functools
import types
from typing import Any

from mmengine.config import Config

from .safe_checkpoint import CheckpointError


class StoredConfigError(CheckpointError):
    """A stored config that is not plain data (it would run code if executed)."""


def _literal(node: ast.AST, text: str) -> Any:
    """The value of ``node``, an expression of literals, containers and ``dict(key=value, ...)`` calls."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(item, text) for item in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k, text): _literal(v, text) for k, v in zip(node.keys, node.values)}
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float, complex)):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict'
            and (not node.args or (len(node.args) == 1 and isinstance(node.args[0], ast.Dict)))
            and all(k.arg is not None for k in node.keywords)):
        # dict(key=value, ...), and dict({'key-that-is-no-name': value}) for other keys
        values = _literal(node.args[0], text) if node.args else {}
        values.update({k.arg: _literal(k.value, text) for k in node.keywords})
        return values
    segment = ast.get_source_segment(text, node) or type(node).__name__
    raise StoredConfigError(f'line {node.lineno}: {segment[:80]!r} is not plain data')


def parse_stored_config(text: str) -> Config:
    """A ``Config`` from the Python text of a stored config, without executing it.

    Args:
        text (str): ``name = value`` lines, as ``Config.pretty_text`` writes them.

    Raises:
        StoredConfigError: The text holds anything but assignments of plain data to names.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as err:
        raise StoredConfigError(f'not a Python config ({err})') from None
    values = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            segment = (ast.get_source_segment(text, stmt) or '').splitlines()[:1]
            raise StoredConfigError(f'line {stmt.lineno}: {segment[0][:80] if segment else ""!r} is not an '
                                    'assignment of plain data')
        values[stmt.targets[0].id] = _literal(stmt.value, text)
    return Config(values)


class _ResumeConfig:
    """What ``Runner.resume`` calls as ``mmengine.Config``: ``fromstring`` reads the stored config as data.

    A config that is not plain data is skipped with a warning: resuming needs of it only ``gpu_ids``.
    """

    @staticmethod
    def fromstring(text: str, file_format: str = '.py') -> Config:
        """The stored config as data, or an empty config (and a warning) where it is not plain data."""
        try:
            return parse_stored_config(text)
        except StoredConfigError as err:
            from mmengine.logging import print_log
            print_log(f'The config stored in the checkpoint being resumed is not plain data ({err}); it was '
                      'not executed, and the check of its gpu_ids against this run is skipped.',
                      logger='current', level=30)
            return Config()


class _MMEngineForResume(types.ModuleType):
    """``mmengine`` as the runner modules see it: everything is mmengine's but ``Config``."""

    Config = _ResumeConfig

    def __getattr__(self, name: str):
        import mmengine
        return getattr(mmengine, name)


def stored_config_of(checkpoint: dict, name: str) -> Config:
    """The config stored in ``checkpoint`` (the message hub's, or ``meta['cfg']``), read as data.

    Raises:
        StoredConfigError: There is none, or it is not plain data.
    """
    try:
        text = checkpoint['message_hub']['runtime_info']['cfg']
    except (KeyError, TypeError):
        text = (checkpoint.get('meta') or {}).get('cfg')
    if not isinstance(text, str):
        raise StoredConfigError(f'{name} stores no config; pass the config file as model=CONFIG.')
    try:
        return parse_stored_config(text)
    except StoredConfigError as err:
        raise StoredConfigError(f'{name}: the config it stores is not plain data ({err}), and mmlit does not '
                                'execute it; pass the config file as model=CONFIG.') from None


def _scopes() -> set:
    """The registry scopes a stored config may name: OpenMMLab's packages (MMEngine's list), and mmlit."""
    from mmengine.config.utils import MODULE2PACKAGE
    return set(MODULE2PACKAGE) | {'mmengine', 'mmcv', 'mmlit'}


def check_buildable(cfg: Config, name: str) -> None:
    """Refuse a stored config whose registry names would import modules.

    MMEngine's registries import the module ``scope.registry`` of a ``type='scope.Name'`` (and of a
    ``_scope_``), and fall back to importing an unknown ``type`` as a dotted path
    (``type='os.system'`` calls ``os.system``). Scopes must be OpenMMLab's; the fallback is turned off
    while the inferencer builds (:func:`_registries_without_imports`).

    Raises:
        StoredConfigError: A ``type`` that is no string, or a scope that is not OpenMMLab's.
    """
    scopes = _scopes()

    def walk(value, where):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == 'type' and not isinstance(item, str):
                    raise StoredConfigError(f'{name}: {where}.type is {item!r}, not a registered name')
                if (key == 'type' and '.' in item) or key in ('_scope_', 'default_scope'):
                    scope = item.split('.')[0] if key == 'type' else item
                    if scope not in scopes:
                        raise StoredConfigError(
                            f'{name}: {where}.{key} = {item!r} names the scope {scope!r}, which is not an '
                            f'OpenMMLab package; mmlit does not import it. Pass the config file as model=CONFIG.')
                walk(item, f'{where}.{key}')
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f'{where}[{i}]')

    walk(cfg.to_dict(), 'cfg')


class _registries_without_imports:
    """Turn off, for a ``with`` block, MMEngine's registry fallback that imports an unknown ``type`` as a
    dotted path (a registered name is looked up as before)."""

    def __enter__(self):
        from mmengine.registry import registry
        self.saved = registry.get_object_from_string

        def refuse(key):
            raise KeyError(f'{key!r} is not registered (mmlit does not import it from a stored config)')

        registry.get_object_from_string = refuse
        return self

    def __exit__(self, *exc):
        from mmengine.registry import registry
        registry.get_object_from_string = self.saved


def _init_from_stored_config(init):
    """Wrap ``BaseInferencer.__init__`` so that ``model=None`` builds from the stored config read as data."""

    @functools.wraps(init)
    def wrapper(self, model=None, weights=None, *args, **kwargs):
        if model is not None or weights is None:
            return init(self, model, weights, *args, **kwargs)
        from mmengine.runner.checkpoint import _load_checkpoint
        cfg = stored_config_of(_load_checkpoint(weights, map_location='cpu'), weights)
        check_buildable(cfg, weights)
        with _registries_without_imports():
            return init(self, cfg, weights, *args, **kwargs)

    wrapper.__mmlit_wrapped__ = True
    return wrapper


def register_stored_config_parsing() -> None:
    """Make ``Runner.resume``, ``FlexibleRunner.resume`` and MMEngine's inferencers read the config a
    checkpoint stores as data (idempotent)."""
    from mmengine.infer import BaseInferencer
    from mmengine.runner import _flexible_runner, runner
    for module in (runner, _flexible_runner):
        if not isinstance(module.mmengine, _MMEngineForResume):
            module.mmengine = _MMEngineForResume('mmengine')
    if not getattr(BaseInferencer.__init__, '__mmlit_wrapped__', False):
        BaseInferencer.__init__ = _init_from_stored_config(BaseInferencer.__init__)
