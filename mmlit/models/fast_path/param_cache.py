"""Caching of tensors that depend only on parameters and the input size, for inference."""
from typing import Callable, Hashable, Sequence

import torch
import torch.nn as nn

from mmlit.utils.compat import is_tracing, tensor_version


class ParamCache:
    """Remembers the last value of ``compute()`` for one key, while the parameters it reads are unchanged.

    Used for the resized position embeddings and relative position biases, which depend only on the
    parameters and the token grid: in eval mode they are computed once per input size. Nothing is cached
    (``compute()`` runs every time) when the module is training, when autograd would need the graph
    (grad enabled and a parameter requiring grad), or while ``torch.compile`` traces, so gradients and
    compiled graphs are those of the uncached computation.

    A parameter counts as changed when its storage or its version counter changes: optimizer steps,
    ``load_state_dict``, in-place edits under ``no_grad`` and ``.to()``/``.cuda()`` all change one of them.
    The cache is a plain attribute, never part of a state dict.
    """

    def __init__(self):
        self.key = None
        self.value = None

    @staticmethod
    def usable(module: nn.Module, params: Sequence[torch.Tensor]) -> bool:
        """Whether caching is allowed now: ``module`` in eval mode, no ``torch.compile`` / export
        tracing, a version counter on every tensor of ``params``, and no autograd graph needed (grad
        disabled, or no tensor of ``params`` requires it)."""
        if module.training or is_tracing() or any(tensor_version(p) is None for p in params):
            return False
        return not (torch.is_grad_enabled() and any(p.requires_grad for p in params))

    def get(self, params: Sequence[torch.Tensor], key: Hashable, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The value of ``compute()``, computed again only when the key or the parameters change.

        Args:
            params (Sequence[Tensor]): The parameters ``compute`` reads; their storage pointer, version
                counter, device and dtype are part of the cache key.
            key (Hashable): What else the value depends on (token grid, dtype).
            compute (Callable[[], Tensor]): Computes the value.

        Returns:
            Tensor: The cached value if the full key is the last one's; else ``compute()``, kept for the
            next call. Call it only when caching is :meth:`usable` (:func:`cached` checks that).
        """
        full_key = (key, ) + tuple((p.data_ptr(), tensor_version(p), p.device, p.dtype) for p in params)
        if full_key != self.key:
            self.key, self.value = None, None  # free the old value before computing the new one
            self.value = compute()
            self.key = full_key
        return self.value

    def clear(self) -> None:
        """Forget the cached value (its memory is freed unless something else holds it)."""
        self.key, self.value = None, None


def cached(module: nn.Module, name: str, params: Sequence[torch.Tensor], key: Hashable,
           compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``compute()``, kept in the cache ``name`` of ``module`` (see :meth:`ParamCache.get`).

    When caching is not :meth:`~ParamCache.usable` (training, autograd, ``torch.compile`` tracing), this
    is ``compute()`` and the module's caches are not even looked up (torch 2.1's dynamo cannot trace the
    lookup).
    """
    if not ParamCache.usable(module, params):
        return compute()
    return module_cache(module, name).get(params, key, compute)


def module_cache(module: nn.Module, name: str) -> ParamCache:
    """The :class:`ParamCache` called ``name`` of ``module``, created on first use.

    The caches live in the module's ``__dict__`` as plain attributes (never in its state dict), so the
    model modules need not declare them."""
    caches = module.__dict__.setdefault('_param_caches', {})
    if name not in caches:
        caches[name] = ParamCache()
    return caches[name]
