"""The exceptions alphazoo raises.

Every error derives from :class:`AlphazooError`, so ``except alphazoo.AlphazooError`` catches
anything the SDK raises on purpose, and every warning category from :class:`AlphazooWarning`.
Where a builtin exception type already carries the meaning (a bad key is a ``ValueError``, a
missing key a ``KeyError``) the alphazoo error derives from it too, so code written against
LEAN-style stores keeps working.
"""

from __future__ import annotations

import warnings

__all__ = [
    "AlphazooError",
    "InvalidKeyError",
    "KeyConflictError",
    "KeyEscapeError",
    "ObjectNotFoundError",
    "ObjectChangedError",
    "StorageLimitError",
    "BundleIntegrityError",
    "BundleFormatError",
    "BundleLimitError",
    "UntrustedModelError",
    "UnsupportedModelError",
    "UnsupportedFormatError",
    "ModelNotFoundError",
    "OnnxParityError",
    "SpaceMismatchError",
    "MissingDependencyError",
    "IncompatibleVersionError",
    "AlphazooWarning",
    "VersionMismatchWarning",
    "AdapterCheckError",
    "SaveWarning",
    "PluginError",
    "PluginHookError",
    "PluginConflictError",
    "AliasConflictError",
    "AliasNotFoundError",
    "PromotionRefusedError",
    "RegistryRecordError",
    "InvalidAliasError",
    "RegistryUsageError",
    "ModelRejectedError",
]


class AlphazooError(Exception):
    """Base class of every error alphazoo raises on purpose."""


class InvalidKeyError(AlphazooError, ValueError):
    """An object-store key breaks the key rules; the message names the key and the rule."""

    def __init__(self, key: str, rule: str) -> None:
        self.key = key
        self.rule = rule
        super().__init__(f"invalid object store key {key!r}: {rule}")


class KeyConflictError(InvalidKeyError):
    """A key and a folder of other keys collide: ``a/a`` cannot be an object while ``a/a/b``
    is one, nor the reverse. ``other`` names the key it collides with, when known."""

    def __init__(self, key: str, rule: str, other: str = "") -> None:
        self.other = other
        super().__init__(key, rule)


class KeyEscapeError(InvalidKeyError):
    """In a folder store, the key's path runs through a symbolic link that leads outside the
    store's root; alphazoo never reads, writes or deletes through such a link."""


class ObjectNotFoundError(AlphazooError, KeyError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"no object with key {key!r} in the object store; "
            "check with store.contains_key(key) before reading"
        )

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0])


class ObjectChangedError(AlphazooError):
    """The object was replaced or deleted by another writer while it was being read.

    ``read_bytes`` and friends retry on their own and raise this only when every attempt raced
    a writer; a stream from ``store.open`` raises it at once (the bytes already handed out
    cannot be taken back), so read the key again.
    """

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        super().__init__(f"object {key!r} changed while it was being read: "
                         f"{detail.rstrip('. ')}; read it again")


class StorageLimitError(AlphazooError):
    """A write would exceed the store's size or object-count limit; nothing was written."""

    def __init__(self, key: str, limit: str, used: int, adding: int, maximum: int,
                 note: str = "") -> None:
        self.key = key
        self.limit = limit
        self.used = used
        self.adding = adding
        self.maximum = maximum
        unit = " bytes" if limit == "max_size" else " objects"
        over = used + adding - maximum
        super().__init__(
            f"cannot save {key!r}: the store's {limit} limit is {maximum:,}{unit}, "
            f"{used:,}{unit} are in use and this save needs {adding:,} more "
            f"({over:,}{unit} over){f'; {note}' if note else ''}; delete objects or "
            f"raise {limit}"
        )


class BundleIntegrityError(AlphazooError):
    """A stored model bundle is corrupt, truncated, extended or tampered with."""


class BundleFormatError(BundleIntegrityError):
    """A bundle is intact (its hashes match) but does not follow its declared format.

    A manifest field of the wrong type or missing, an ``adapter_data`` the format's schema
    refuses, a payload that is not the archive its format promises, a tree whose node arrays
    point outside themselves: ``field`` names what is wrong (``"adapter_data.outputs"``,
    ``"model.skops"``...). It derives from :class:`BundleIntegrityError`, so code that catches
    corrupt bundles catches malformed ones too: hashes prove only that nothing changed since
    the bundle was written, not that its writer followed the format.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"malformed bundle: {field}: {problem}")


class BundleLimitError(AlphazooError):
    """Loading a bundle would read or allocate more than a load limit allows; nothing was
    allocated. ``limit`` names the limit (``"max_bytes"``, ``"max_members"``), ``value`` what
    the bundle declares, ``maximum`` the limit's value, ``what`` the part of the bundle.

    Raise the limit for one load with ``zoo.load(key, max_bytes=...)`` (or ``Zoo(...,
    max_bytes=...)``, or ``$ALPHAZOO_MAX_BYTES``) when the model is known to be that large.
    """

    def __init__(self, limit: str, value: int, maximum: int, what: str) -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        self.what = what
        super().__init__(
            f"{what} needs {value:,} (limit {limit}={maximum:,}): refused before allocating. "
            f"If this model really is that large, load it with a higher {limit}."
        )


class UntrustedModelError(AlphazooError):
    """A bundle whose format runs code on load (pickle) was not shown to be trusted."""


class UnsupportedModelError(AlphazooError, TypeError):
    """No installed adapter owns this model object."""


class UnsupportedFormatError(AlphazooError, ValueError):
    """The adapter that owns a model cannot write or read the requested format."""


class ModelNotFoundError(AlphazooError, KeyError):
    """No zoo model is registered under that name."""

    def __str__(self) -> str:
        return str(self.args[0])


class OnnxParityError(AlphazooError):
    """An ONNX export does not reproduce the native model's predictions; nothing was saved."""


class SpaceMismatchError(AlphazooError, ValueError):
    """An environment given at load does not have the spaces the policy was trained for.

    ``which`` is ``"observation_space"`` or ``"action_space"``; ``saved`` and ``given`` are
    the two spaces as the manifest records them (JSON). A policy predicts for the shapes and
    bounds it was built with: load it without ``env=``, or give the environment it was
    trained on.
    """

    def __init__(self, which: str, saved: object, given: object) -> None:
        self.which = which
        self.saved = saved
        self.given = given
        super().__init__(
            f"the environment's {which} {given} is not the {saved} this policy was trained "
            "for; give an environment with the same spaces, or load without env="
        )


class MissingDependencyError(AlphazooError, ImportError):
    """A format or model needs a library that is not installed; the message names the extra."""


class IncompatibleVersionError(AlphazooError):
    """A bundle was saved with library versions this environment cannot load it with.

    ``library``, ``saved`` and ``installed`` name the difference; the message says what to
    install. Pickles need the same minor version of the library that unpickles them
    (``Zoo.load(..., allow_version_mismatch=True)`` tries anyway); an ONNX model newer than the
    installed onnxruntime is refused outright.
    """

    def __init__(self, message: str, library: str = "", saved: str = "",
                 installed: str = "") -> None:
        super().__init__(message)
        self.library = library
        self.saved = saved
        self.installed = installed


class AdapterCheckError(AlphazooError, AssertionError):
    """A plugin failed a check of :func:`alphazoo.testing.check_adapter`.

    ``check`` names the check (``"round_trip"``, ``"trust"``...), and the message starts with
    it, then says what was expected and what was seen. It is an ``AssertionError``, so pytest
    shows it as a failed assertion in the plugin author's test suite.
    """

    def __init__(self, check: str, problem: str, plugin: str = "") -> None:
        self.check = check
        self.problem = problem
        self.plugin = plugin
        where = f" [plugin {plugin}]" if plugin else ""
        super().__init__(f"{check}: {problem}{where}")


class AlphazooWarning(UserWarning):
    """Base class of every warning alphazoo emits on purpose:
    ``warnings.filterwarnings("error", category=alphazoo.AlphazooWarning)`` makes them all
    errors, ``"ignore"`` silences them, without touching other libraries' warnings."""


class VersionMismatchWarning(AlphazooWarning):
    """A bundle was saved with another version of a library; it loads, but check it."""


class SaveWarning(AlphazooWarning):
    """Something to know about a model that was saved (an adapter's note: a format that runs
    code on load, a precision lost in export...); the bundle was written."""


class PluginError(AlphazooError):
    """A plugin misbehaved; ``plugin`` names it. Disable it with
    ``ALPHAZOO_DISABLE_PLUGINS=name`` or fix (or uninstall) its distribution."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(message)


class PluginHookError(PluginError):
    """A plugin's hook implementation raised an exception that is not an alphazoo error.

    Raised from the exception (``__cause__``), naming the plugin and the hook, so a broken
    third-party plugin is not mistaken for a fault of the model being handled.
    """

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        self.hook = hook
        self.error = error
        super().__init__(
            plugin,
            f"plugin {plugin!r} raised {type(error).__name__} in {hook}: {error}; fix or "
            f"uninstall the plugin, or disable it with ALPHAZOO_DISABLE_PLUGINS={plugin} "
            "(see `alphazoo plugins`)",
        )


class PluginConflictError(PluginError):
    """Two plugins declare the same class in ``alphazoo_model_types``: no single adapter owns
    its models. ``plugins`` names them, ``model_class`` the class."""

    def __init__(self, plugins: list[str], model_class: str) -> None:
        self.plugins = list(plugins)
        self.model_class = model_class
        names = " and ".join(repr(name) for name in self.plugins)
        super().__init__(
            self.plugins[0],
            f"plugins {names} both declare {model_class} in alphazoo_model_types, so neither "
            "owns its models; uninstall one of them or disable it with "
            f"ALPHAZOO_DISABLE_PLUGINS={self.plugins[-1]}",
        )


def require(module: str, extra: str, purpose: str) -> object:
    """Import ``module`` for ``purpose`` or raise :class:`MissingDependencyError` naming the
    ``alphazoo[extra]`` that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs {module.partition('.')[0]}, which is not installed: "
            f"pip install 'alphazoo[{extra}]' ({exc})"
        ) from exc


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` was renamed ``new``: a :class:`DeprecationWarning` at the caller's
    import or attribute access (``stacklevel``), the same words for every renamed name, which
    stays importable for one release."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release: it was "
                  f"renamed {new}", DeprecationWarning, stacklevel=stacklevel)


class AliasConflictError(AlphazooError):
    """Another writer moved a registry alias between this writer's read of it and its move,
    or (``expect=``) it does not point where the mover expected; this move was not made. Read
    the alias again (``registry.target``) and decide anew.

    When the move was conditional (``expect=``) and the alias pointed elsewhere before any
    writer raced, ``raced`` is False and the message says where it points.
    """

    def __init__(self, name: str, alias: str, detail: str, *, raced: bool = True) -> None:
        self.name = name
        self.alias = alias
        self.raced = raced
        if raced:
            message = (f"alias {alias!r} of {name!r} was moved by another writer while this "
                       f"one moved it ({detail}); nothing was changed by this move: read the "
                       "alias again and retry")
        else:
            message = (f"alias {alias!r} of {name!r} {detail}; nothing was changed: check it "
                       f"(`alphazoo registry ls {name}`) and promote again expecting its "
                       "current target, or without expect")
        super().__init__(message)


class AliasNotFoundError(AlphazooError, KeyError):
    """A registry alias (``name@alias``) points at no version (it was never promoted), or a
    rollback found no earlier target to go back to."""

    def __init__(self, name: str, alias: str, detail: str = "") -> None:
        self.name = name
        self.alias = alias
        if detail:
            message = f"alias {alias!r} of model {name!r}: {detail}"
        else:
            message = (
                f"alias {alias!r} of model {name!r} points at no version; promote one first "
                f"with zoo.registry.promote({name!r}, VERSION, {alias!r}) or "
                f"`alphazoo registry promote {name} VERSION --alias {alias}`"
            )
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0])


class PromotionRefusedError(AlphazooError):
    """A promotion gate refused the candidate version; the alias was left where it was.

    ``gate`` names the gate that failed and ``reason`` says why.
    """

    def __init__(self, name: str, alias: str, version: int, gate: str, reason: str) -> None:
        self.name = name
        self.alias = alias
        self.version = version
        self.gate = gate
        self.reason = reason
        super().__init__(
            f"promotion of {name!r} v{version} to {alias!r} refused by gate {gate!r}: "
            f"{reason.rstrip('. ')}; the alias was not moved (fix the candidate, or promote "
            "with gates=[] to skip the alias's gates deliberately)"
        )


class RegistryRecordError(AlphazooError):
    """A registry record (an alias's head or history entry) is not what alphazoo writes: it
    was edited or replaced by hand. ``key`` names it."""

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        super().__init__(
            f"registry record {key!r} is damaged ({detail}); restore it from a backup, or "
            "delete the alias's head (its history entries are kept) and promote again"
        )


class InvalidAliasError(InvalidKeyError):
    """A registry alias breaks the alias rules (empty, a character other than letters,
    digits, ``_`` and ``-``, longer than 100); the message names the alias and the rule."""

    def __init__(self, alias: str, rule: str, name: str | None = None) -> None:
        self.alias = alias
        self.name = name
        AlphazooError.__init__(self, f"invalid registry alias {alias!r}"
                               f"{f' of {name!r}' if name else ''}: {rule}")
        self.key = f"{name}@{alias}" if name else alias
        self.rule = rule


class RegistryUsageError(AlphazooError, ValueError):
    """A registry call got an argument it cannot use: a version that is no number from 1 up
    (``"v0"``, ``"abc"``), a negative ``keep``. The message says what to give instead."""


class ModelRejectedError(AlphazooError):
    """A followed version loaded but its ``verify`` check refused it; it was not served."""
