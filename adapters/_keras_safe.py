"""Loading Keras' own serialized models from untrusted bundles: safe mode and bounds.

The keras adapter's ``keras`` and ``json`` formats rebuild a model from a JSON architecture
with Keras' deserializer, which runs a ``Lambda`` layer's bytecode unless ``safe_mode`` is on.
Here: the Keras versions whose safe mode holds (:data:`SAFE_MODE_KERAS`), the scope that pins
it for a load (:func:`rebuilding`, which also turns what Keras raises on a bad payload into
alphazoo's errors), and the bound on a ``.keras`` archive's HDF5 weights checked before Keras
opens it. Whether the load may run code is the host's decision
(:attr:`alphazoo.contracts.LoadRequest.may_run_code`), never made here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alphazoo.errors import BundleFormatError, UntrustedModelError

__all__ = ["SAFE_MODE_KERAS", "UnknownKerasClassError", "check_h5_weights",
           "check_safe_mode_version", "rebuilding", "safe_mode_scope"]

#: The first Keras release without a known bypass of safe_mode (CVE-2025-1550, CVE-2025-8747,
#: CVE-2025-9906, CVE-2026-1462 were fixed up to 3.14).
SAFE_MODE_KERAS = (3, 14)


class UnknownKerasClassError(BundleFormatError, TypeError):
    """The bundle names a Keras class that is not registered here.

    Most often the user's own layer, whose module is not imported yet (hence also a
    ``TypeError``, as Keras raises it); a crafted bundle naming nonsense lands here too.
    """


def _unreadable(fmt: str, exc: Exception) -> BundleFormatError:
    # The hashes matched, so the bytes are what the writer stored: what Keras cannot rebuild
    # from them is a malformed (or crafted) bundle, not a Keras bug to surface raw.
    return BundleFormatError(f"{fmt} payload", f"Keras could not rebuild the model from it "
                             f"({type(exc).__name__}: {exc})")


UnknownKerasClassError.__module__ = "alphazoo.adapters.keras"  # its public home


@contextlib.contextmanager
def rebuilding(keras: Any, fmt: str, *, safe: bool) -> Iterator[None]:
    """Rebuild a model of format ``fmt`` in the block, with Keras' safe mode held at ``safe``.

    Refuses first an unsafe Keras (:func:`check_safe_mode_version`). What Keras raises on a
    payload becomes :class:`~alphazoo.UntrustedModelError` (safe mode refused Lambda code),
    :class:`UnknownKerasClassError` (a class not registered here) or
    :class:`~alphazoo.BundleFormatError` (anything else it could not rebuild).
    """
    check_safe_mode_version(keras, trusted=not safe)
    try:
        with safe_mode_scope(safe):
            yield
    except ValueError as exc:
        if "safe_mode" not in str(exc):
            raise _unreadable(fmt, exc) from exc
        raise UntrustedModelError(
            f"Keras' safe mode refused this {fmt} bundle ({exc}). Its Lambda layers run "
            "Python code: pass trusted=True (or load with the bundle's sign_key) if you trust "
            "it."
        ) from exc
    except (KeyError, IndexError, AttributeError) as exc:
        raise _unreadable(fmt, exc) from exc
    except TypeError as exc:
        if "Could not locate" not in str(exc):
            raise _unreadable(fmt, exc) from exc
        raise UnknownKerasClassError(f"{fmt} payload", (
            f"{exc} Import the module that registers the class "
            "(@keras.saving.register_keras_serializable) before loading, or pass "
            "custom_objects={'Name': cls} to zoo.load."
        )) from exc


@contextlib.contextmanager
def safe_mode_scope(safe: bool) -> Iterator[None]:
    """Hold Keras' safe mode at ``safe`` for the load, whatever the process set before.

    ``load_model(safe_mode=True)`` gives way to a process-wide
    ``keras.config.enable_unsafe_deserialization()`` (Keras reads its scope flag first), so a
    notebook that once called it would run the Lambda code of an untrusted bundle. Keras'
    own scope class pins the flag; it is private, so a Keras without it loads unpinned.
    """
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # pragma: no cover - a future Keras; check_safe_mode_version applies
        yield
        return
    with SafeModeScope(safe):
        yield


def check_safe_mode_version(keras: Any, trusted: bool) -> None:
    """Refuse an untrusted load under a Keras older than :data:`SAFE_MODE_KERAS`."""
    version = tuple(int(part) for part in keras.__version__.split(".")[:2] if part.isdigit())
    if not trusted and version < SAFE_MODE_KERAS:
        raise UntrustedModelError(
            f"keras {keras.__version__} has known bypasses of its safe_mode (fixed in "
            f"{'.'.join(map(str, SAFE_MODE_KERAS))}); upgrade keras, or pass trusted=True if you "
            "trust this bundle"
        )


def check_h5_weights(path: Path, limits: Any) -> None:
    """Refuse a ``.keras`` archive whose HDF5 weights declare more than ``limits`` allow.

    The zip check bounds the HDF5 file's bytes, but an HDF5 dataset can be chunked and
    compressed: a small file may declare arrays of any size, which Keras allocates when it
    reads them. h5py reads only the metadata here (shapes and dtypes).
    """
    import zipfile

    from alphazoo.limits import LoadLimits, array_bytes, check_bytes

    try:
        import h5py
    except ImportError:  # pragma: no cover - Keras itself needs h5py to read these
        return
    limits = limits or LoadLimits()
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(".h5")]
        for name in names:
            total = 0
            with archive.open(name) as member, h5py.File(member, "r") as weights:
                datasets: list[Any] = []
                weights.visititems(lambda _, item, datasets=datasets: datasets.append(item)
                                   if isinstance(item, h5py.Dataset) else None)
                for dataset in datasets:
                    size = array_bytes(dataset.shape or (), dataset.dtype.itemsize)
                    check_bytes(size, limits, f"{path.name}:{name} dataset {dataset.name!r}")
                    total += size
                    check_bytes(total, limits, f"{path.name}:{name} datasets together")
