"""A torch ``state_dict`` as :mod:`alphazoo.adapters._weights` tensors and back, bit-exact.

The torch adapter's ``json`` format stores a module's state this way, its ``safetensors``
format as the plain tensors of :func:`dense_state`, and its weights formats load a state into
a rebuilt module with :func:`load_state`, keeping every dtype (a module converted to float64
after building comes back float64, tied weights stay tied).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from alphazoo.errors import UnsupportedFormatError, UnsupportedModelError

from ._weights import Tensor

__all__ = ["buffer_dtypes", "dense_state", "load_state", "state_of", "state_to_tensors",
           "tensors_to_state", "versions_of"]

#: Integer types of each width, for torch dtypes numpy has no name for (bfloat16, float8...).
_VIEW_AS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def state_to_tensors(state: Mapping[str, Any]) -> list[Tensor]:
    """A ``state_dict``'s tensors as :class:`Tensor` entries, bit for bit.

    A dtype numpy lacks (bfloat16, float8...) is stored as a same-width integer view with its
    torch name in ``type``.
    """
    entries = []
    for name, value in state.items():
        tensor = _dense(name, value, "json")
        try:
            entries.append(Tensor(name, tensor.numpy()))
        except TypeError:  # numpy has no such dtype
            view = tensor.view(_VIEW_AS[tensor.element_size()])
            entries.append(Tensor(name, view.numpy(), str(tensor.dtype).removeprefix("torch.")))
    return entries


def dense_state(state: Mapping[str, Any], fmt: str) -> dict[str, torch.Tensor]:
    """A ``state_dict``'s tensors on the CPU, contiguous and sharing no memory, for a writer
    that takes whole tensors (format ``fmt``, named in errors).

    Tied weights appear once per name in a ``state_dict`` and share their storage; a writer
    that refuses shared memory (safetensors) gets a copy for every name after the first, and
    :func:`load_state` keeps them tied on load (it copies into the rebuilt module's tensors).
    """
    dense: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for name, value in state.items():
        tensor = _dense(name, value, fmt)
        storage = tensor.untyped_storage().data_ptr()
        if storage in storages and tensor.numel():
            tensor = tensor.clone()
        storages.add(storage)
        dense[name] = tensor
    return dense


def _dense(name: str, value: Any, fmt: str) -> torch.Tensor:
    """``value`` detached, on the CPU and contiguous; a non-tensor (extra state) or a sparse,
    quantized or complex tensor raises :class:`~alphazoo.UnsupportedFormatError`."""
    if not isinstance(value, torch.Tensor):
        raise UnsupportedFormatError(
            f"state_dict entry {name!r} is a {type(value).__name__}, not a tensor (extra "
            "state); save this module as 'pt' or 'pickle'"
        )
    if value.layout != torch.strided or value.is_quantized or value.is_complex():
        raise UnsupportedFormatError(
            f"state_dict entry {name!r} is a {value.dtype} {value.layout} tensor; the {fmt} "
            "format holds dense real tensors: save this module as 'pt' or 'pickle'"
        )
    return value.detach().cpu().contiguous()


def state_of(tensors: Mapping[str, torch.Tensor], versions: Mapping[str, Any] | None = None
             ) -> dict[str, torch.Tensor]:
    """A ``state_dict`` of named ``tensors``, with the submodules' format ``versions``
    (``state_dict()._metadata``, as :func:`versions_of` gives them) when given."""
    from collections import OrderedDict

    state: OrderedDict[str, torch.Tensor] = OrderedDict(tensors)
    if isinstance(versions, Mapping):
        state._metadata = OrderedDict(  # type: ignore[attr-defined]
            (str(k), dict(v)) for k, v in versions.items() if isinstance(v, Mapping))
    return state


def tensors_to_state(tensors: Sequence[Tensor], versions: Mapping[str, Any] | None = None
                     ) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of :func:`state_to_tensors` entries, with the submodules' format
    ``versions`` (``state_dict()._metadata``) when given."""
    from alphazoo.errors import BundleIntegrityError

    state = state_of({}, versions)
    for entry in tensors:
        tensor = torch.from_numpy(entry.array)
        if entry.type is not None:
            dtype = getattr(torch, entry.type, None)
            if not isinstance(dtype, torch.dtype) or dtype.itemsize != tensor.element_size():
                raise BundleIntegrityError(
                    f"weights entry {entry.name!r} names type {entry.type!r}, not a torch dtype "
                    f"{tensor.element_size()} bytes wide"
                )
            tensor = tensor.view(dtype)
        state[entry.name] = tensor
    return state


def buffer_dtypes(module: nn.Module) -> dict[str, str]:
    """The dtypes of ``module``'s non-persistent buffers, which its ``state_dict`` leaves out.

    A rebuilt module makes them anew in its constructor's dtype; recording them lets
    :func:`load_state` give back a module that was converted (``.double()``) after building.
    """
    persistent = set(module.state_dict(keep_vars=True))
    return {name: str(buffer.dtype).removeprefix("torch.")
            for name, buffer in module.named_buffers() if name not in persistent}


def _cast_in_place(module: nn.Module, name: str, dtype: torch.dtype) -> None:
    # Through .data, as Module.to() does: the Parameter (or buffer) object stays the same, so
    # parameters shared between submodules (tied weights) stay shared and optimizers keep
    # their references.
    owner_name, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_name)
    tensor: torch.Tensor | None = owner._parameters.get(attr)
    if tensor is None:
        tensor = owner._buffers.get(attr)
    if tensor is not None and tensor.dtype != dtype:
        tensor.data = tensor.data.to(dtype)


def load_state(module: nn.Module, state: Mapping[str, Any], source: str,
               buffers: Mapping[str, str] | None = None) -> nn.Module:
    """Load ``state`` into ``module`` exactly: every key, every bit, every dtype.

    ``load_state_dict`` copies into the module's tensors, which would cast a float64 weight
    into a rebuilt float32 layer; so each tensor whose saved dtype differs is converted first
    (in place, keeping tied weights tied), then the saved bits are copied in. ``buffers`` are
    the dtypes of non-persistent buffers (:func:`buffer_dtypes`), converted the same way.
    """
    current = module.state_dict(keep_vars=True)
    wanted = [(name, value.dtype) for name, value in state.items()
              if isinstance(value, torch.Tensor) and isinstance(current.get(name), torch.Tensor)]
    for name, text in (buffers or {}).items():
        dtype = getattr(torch, str(text), None)
        if isinstance(dtype, torch.dtype):
            wanted.append((name, dtype))
    try:
        for name, dtype in wanted:
            _cast_in_place(module, name, dtype)
        module.load_state_dict(state, strict=True)
    except (AttributeError, RuntimeError) as exc:
        raise UnsupportedModelError(
            f"the saved state_dict does not fit the {type(module).__name__} made by {source}: "
            f"{exc}"
        ) from exc
    return module.eval()


def versions_of(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The per-submodule format versions of a ``state_dict`` (its ``_metadata``) as JSON.

    ``load_state_dict`` hands them to modules that migrate old layouts (BatchNorm's
    ``num_batches_tracked``, for one), so the ``json`` format keeps them.
    """
    metadata = getattr(state, "_metadata", None)
    if not isinstance(metadata, Mapping):
        return None
    return {str(k): {str(n): v for n, v in dict(entry).items()
                     if isinstance(v, (int, float, str, bool)) or v is None}
            for k, entry in metadata.items() if isinstance(entry, Mapping)}
