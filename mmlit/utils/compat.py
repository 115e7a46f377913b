"""Feature detection for the torch releases mmlit supports (2.1 to the newest; README "Supported versions").

Code elsewhere in mmlit asks these helpers what the running torch can do, never its version number. The
private torch attributes mmlit reads are read here (oneDNN's fused linear, used only by
:mod:`mmlit.models.fast_path.linear`, is detected there), each with a fallback to the plain code when a
torch release drops it; ``tests/test_utils/test_compat.py`` fails when one changes.
"""
import functools
import inspect

import torch
from torch.nn.modules import module as _nn_module

_compiler = getattr(torch, 'compiler', None)
if hasattr(_compiler, 'is_compiling'):  # torch >= 2.3
    _is_compiling = _compiler.is_compiling
else:  # torch 2.1/2.2: the same flag under its older name
    from torch._dynamo import is_compiling as _is_compiling
# torch.export's flag (torch >= 2.6); older torch.export runs under dynamo, where is_compiling() holds
_is_torch_exporting = getattr(_compiler, 'is_exporting', lambda: False)
# CPU SDPA's flash kernel with a mask (torch >= 2.3); older torch runs a masked attention by its math path
_cpu_flash_op = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu', None)
_CPU_FLASH_TAKES_MASK = _cpu_flash_op is not None and 'attn_mask' in str(_cpu_flash_op.default._schema)
# whether CPU autocast is on: is_autocast_enabled('cpu') on torch >= 2.4, where is_autocast_cpu_enabled is deprecated
try:
    torch.is_autocast_enabled('cpu')
    _IS_AUTOCAST_ENABLED_TAKES_DEVICE = True
except TypeError:  # torch < 2.4: no argument
    _IS_AUTOCAST_ENABLED_TAKES_DEVICE = False


def is_compiling() -> bool:
    """True while ``torch.compile`` (dynamo) traces the calling code, on every supported torch."""
    return _is_compiling()


def is_exporting() -> bool:
    """True while the calling code is traced for export: by ``torch.export`` (torch >= 2.6 says so) or by
    ``torch.onnx.export`` (its TorchScript exporter on every torch)."""
    return _is_torch_exporting() or torch.onnx.is_in_onnx_export()


def cpu_flash_takes_mask() -> bool:
    """Whether CPU ``F.scaled_dot_product_attention`` has a flash kernel that takes a mask (torch >= 2.3).
    Older torch computes a masked attention by its math path, whole scores at once. Detected once, at
    import, so that the answer is a constant under ``torch.compile``."""
    return _CPU_FLASH_TAKES_MASK


def cpu_autocast_enabled() -> bool:
    """Whether CPU autocast is on here (``torch.autocast('cpu')``), on every supported torch."""
    if _IS_AUTOCAST_ENABLED_TAKES_DEVICE:
        return torch.is_autocast_enabled('cpu')
    return torch.is_autocast_cpu_enabled()


def is_tracing() -> bool:
    """True under ``torch.compile``, ``torch.export`` or ``torch.onnx.export``: where eager-only fast
    paths (caches keyed by storage pointers, data-dependent chunking) must give way to the plain code."""
    return is_compiling() or is_exporting()


@functools.lru_cache(maxsize=None)
def onnx_has_dynamo_exporter() -> bool:
    """Whether ``torch.onnx.export`` takes ``dynamo=`` (the torch.export-based exporter, torch >= 2.5)."""
    return 'dynamo' in inspect.signature(torch.onnx.export).parameters


def global_forward_hooks_registered() -> bool:
    """Whether any global module forward (pre-)hook is registered (``nn.modules.module.register_module_
    forward_hook``): then a fused computation, which calls no module, must give way to the modules. Reads
    torch's private registries; True (the safe answer) if they are gone."""
    hooks = getattr(_nn_module, '_global_forward_hooks', None)
    pre_hooks = getattr(_nn_module, '_global_forward_pre_hooks', None)
    if hooks is None or pre_hooks is None:
        return True
    return bool(hooks or pre_hooks)


def tensor_version(tensor: torch.Tensor):
    """The version counter of ``tensor`` (bumped by every in-place change: optimizer steps,
    ``load_state_dict``, edits under ``no_grad``), or None where torch has none to read (then nothing that
    depends on it may be cached)."""
    return getattr(tensor, '_version', None)
