"""Facts about live model objects, shared by every :class:`~alphazoo.Zoo` of the process.

``Zoo.build`` records which zoo model built an object and with which parameters, ``Zoo.train``
the rows, duration, data window and a sample of the input; ``Zoo.save`` writes them into the
manifest, which is what lets a zoo-built torch module reload without ``builder=``. The facts
belong to the model, not to the zoo that recorded them: a model built by one zoo and saved by
another (a local zoo for training, an S3 zoo for publishing) keeps them.

Entries are keyed by the object's identity and held through a weak reference: a model that is
garbage collected takes its facts with it, and equal-comparing models never share facts.
Objects that cannot be weakly referenced (instances of classes with ``__slots__`` and no
``__weakref__``, ints, tuples) get no facts: :func:`record` returns False and the zoo saves
them without a training section or zoo-model name (a torch module of that kind would then
need ``builder=`` to load).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["facts_of", "record", "tracked"]

# id(model) -> (weak reference to the model, its facts)
_FACTS: dict[int, tuple[weakref.ref[Any], dict[str, Any]]] = {}
_LOCK = threading.Lock()


def record(model: Any, **facts: Any) -> bool:
    """Add ``facts`` to those known about ``model``; False when ``model`` cannot be weakly
    referenced, in which case nothing is recorded."""
    key = id(model)
    with _LOCK:
        entry = _FACTS.get(key)
        if entry is None or entry[0]() is not model:  # none yet, or a dead object's id reused
            def forget(dead: weakref.ref[Any], key: int = key) -> None:
                _forget(key, dead)

            try:
                ref = weakref.ref(model, forget)
            except TypeError:
                return False
            entry = (ref, {})
            _FACTS[key] = entry
        entry[1].update(facts)
    return True


def facts_of(model: Any) -> dict[str, Any]:
    """A copy of the facts recorded about ``model``; empty when there are none."""
    entry = _FACTS.get(id(model))
    if entry is None or entry[0]() is not model:
        return {}
    return dict(entry[1])


def tracked() -> int:
    """How many live objects have facts (for tests that check nothing leaks)."""
    return len(_FACTS)


def _forget(key: int, dead: weakref.ref[Any]) -> None:
    # Called by the garbage collector, possibly while record() holds the lock in this thread:
    # no lock here, and only the entry of this very reference goes.
    entry = _FACTS.get(key)
    if entry is not None and entry[0] is dead:
        _FACTS.pop(key, None)
