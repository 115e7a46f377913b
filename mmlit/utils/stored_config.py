"""The config a checkpoint stores, read as data: never executed, never importing what it names.

MMEngine writes the training config into every checkpoint (``meta['config']`` and the message hub's
``runtime_info['cfg']``) as the Python text of ``Config.pretty_text``, and reads it back with
``Config.fromstring(..., file_format='.py')``, which executes it (and imports its ``custom_imports``):
``Runner.resume`` (for its check of the number of GPUs) and the inferencers given ``model=None`` (to build
the model). A checkpoint from someone else would run their code there. :func:`parse_stored_config` reads
such text as data instead: assignments of literals, lists, tuples, dicts and ``dict(...)`` calls, which is
all ``pretty_text`` writes; anything else raises :class:`StoredConfigError`. Resume reads it so; the
inferencers refuse ``model=None``, as building the components such a config names runs their constructors
with its arguments (some evaluate strings or read config files): the user passes the config, or, for a
checkpoint they trust, :func:`stored_config_of` it.
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


def _refuse_stored_config(init):
    """Wrap ``BaseInferencer.__init__``: ``model=None`` (build from the checkpoint's stored config) is
    refused, with what to pass instead."""

    @functools.wraps(init)
    def wrapper(self, model=None, weights=None, *args, **kwargs):
        if model is None and weights is not None:
            raise StoredConfigError(
                f'{weights}: mmlit does not build a model from the config a checkpoint stores (model=None): its '
                "components' constructors would run with the checkpoint's arguments, and some evaluate strings "
                'or read files. Pass the config file as model=CONFIG; for a checkpoint you trust, '
                'model=mmlit.utils.stored_config_of(mmlit.utils.safe_load(weights), weights).')
        return init(self, model, weights, *args, **kwargs)

    wrapper.__mmlit_wrapped__ = True
    return wrapper


def register_stored_config_parsing() -> None:
    """Make ``Runner.resume`` and ``FlexibleRunner.resume`` read the config a checkpoint stores as data, and
    MMEngine's inferencers refuse to build a model from it (idempotent)."""
    from mmengine.infer import BaseInferencer
    from mmengine.runner import _flexible_runner, runner
    for module in (runner, _flexible_runner):
        if not isinstance(module.mmengine, _MMEngineForResume):
            module.mmengine = _MMEngineForResume('mmengine')
    if not getattr(BaseInferencer.__init__, '__mmlit_wrapped__', False):
        BaseInferencer.__init__ = _refuse_stored_config(BaseInferencer.__init__)
