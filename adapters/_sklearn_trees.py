"""Validation of scikit-learn tree node arrays loaded from a skops payload.

scikit-learn's tree prediction code (Cython) follows ``children_left``/``children_right`` and
indexes the input row with ``feature`` without bounds checks: it trusts that the arrays came
from its own builder. A skops payload sets those arrays from ``.npy`` members, so a crafted one
makes ``predict`` read outside its memory (a child index out of range or negative: SIGSEGV) or
loop forever (a cycle). skops no longer trusts ``sklearn.tree._tree.Tree`` for that reason
(skops PR #535); alphazoo keeps loading forests without ``trusted=True`` by checking every tree
before the model is returned, in O(nodes) with numpy, for trusted and signed loads too (a
signature vouches for the author, not for the arrays):

- ``Tree`` (decision trees, forests, gradient boosting): node 0 is the root; a leaf has both
  children -1; an internal node's children lie after it (scikit-learn's builders always add
  children after their parent) and below ``node_count``; no node has two parents. Together
  these make the nodes one tree reached from the root, each node once, so no walk can cycle
  or leave the arrays. Internal nodes' features lie in ``[0, n_features)`` and match the
  estimator's ``n_features_in_``; their thresholds are finite; ``max_depth`` covers the real
  depth; ``value`` has one row per node.
- ``TreePredictor`` (histogram gradient boosting): the same rules on its ``nodes`` records,
  plus categorical splits' ``bitset_idx`` inside the bitset arrays.

A failure is a :class:`~alphazoo.BundleFormatError` naming the tree and the rule.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from alphazoo.errors import BundleFormatError

__all__ = ["validate_trees"]

_LEAF = -1
#: A bound on the objects walked to find trees: a model is a finite graph, but a bound keeps
#: the walk O(model) whatever a payload builds.
_MAX_OBJECTS = 10_000_000


def validate_trees(model: Any, where: str) -> int:
    """Check every tree reachable from ``model``; return how many were checked."""
    tree_module = sys.modules.get("sklearn.tree._tree")
    tree_class = getattr(tree_module, "Tree", None)
    predictor_module = sys.modules.get(
        "sklearn.ensemble._hist_gradient_boosting.predictor")
    predictor_class = getattr(predictor_module, "TreePredictor", None)
    checked = 0
    for path, obj, owner in _walk(model):
        if tree_class is not None and isinstance(obj, tree_class):
            _check_tree(obj, f"{where}: {path}", getattr(owner, "n_features_in_", None))
            checked += 1
        elif predictor_class is not None and isinstance(obj, predictor_class):
            _check_predictor(obj, f"{where}: {path}", getattr(owner, "n_features_in_", None))
            checked += 1
    return checked


def _walk(root: Any) -> Iterator[tuple[str, Any, Any]]:
    """Every object reachable through attributes, lists, tuples, dicts and object arrays, with
    a path for messages and the estimator that holds it."""
    import numpy as np

    seen: set[int] = set()
    stack: list[tuple[str, Any, Any]] = [("model", root, None)]
    while stack:
        path, obj, owner = stack.pop()
        if id(obj) in seen or len(seen) > _MAX_OBJECTS:
            continue
        seen.add(id(obj))
        yield path, obj, owner
        if isinstance(obj, (str, bytes, int, float, bool, type(None))):
            continue
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                stack.extend((f"{path}[{i}]", item, owner) for i, item in enumerate(obj.flat))
            continue
        if isinstance(obj, (list, tuple)):
            stack.extend((f"{path}[{i}]", item, owner) for i, item in enumerate(obj))
        elif isinstance(obj, dict):
            stack.extend((f"{path}[{k!r}]", item, owner) for k, item in obj.items())
        else:
            attributes = getattr(obj, "__dict__", None)
            if isinstance(attributes, dict):
                holder = obj if hasattr(obj, "n_features_in_") else owner
                stack.extend((f"{path}.{k}", item, holder) for k, item in attributes.items())


def _fail(where: str, rule: str) -> None:
    raise BundleFormatError(where, f"tree node arrays are invalid: {rule}")


def _check_structure(left: Any, right: Any, where: str) -> Any:
    """The internal-node mask after checking that the children arrays form one tree."""
    import numpy as np

    count = len(left)
    if count == 0 or len(right) != count:
        _fail(where, f"{count} nodes, {len(right)} right children")
    index = np.arange(count)
    leaf_left, leaf_right = left == _LEAF, right == _LEAF
    if np.any(leaf_left != leaf_right):
        bad = int(np.flatnonzero(leaf_left != leaf_right)[0])
        _fail(where, f"node {bad} has one child (left {int(left[bad])}, right {int(right[bad])})")
    internal = ~leaf_left
    for side, children in (("left", left), ("right", right)):
        child = children[internal]
        outside = (child <= index[internal]) | (child >= count)
        if np.any(outside):
            bad = int(index[internal][np.flatnonzero(outside)[0]])
            _fail(where, f"node {bad}'s {side} child {int(children[bad])} is not a later node "
                         f"in [1, {count})")
    children = np.concatenate([left[internal], right[internal]])
    if len(np.unique(children)) != len(children):
        _fail(where, "a node is the child of two parents (a shared subtree or a cycle)")
    if len(children) != count - 1:
        _fail(where, f"{count} nodes but {len(children)} parent links: not one tree")
    return internal


def _depth(left: Any, right: Any, internal: Any) -> int:
    """The tree's depth, level by level (children lie after parents, so this ends)."""
    import numpy as np

    frontier, depth = np.array([0]), 0
    while True:
        inner = frontier[internal[frontier]]
        if not len(inner):
            return depth
        frontier = np.concatenate([left[inner], right[inner]])
        depth += 1


def _check_features(feature: Any, internal: Any, n_features: int, where: str) -> None:
    import numpy as np

    used = feature[internal]
    bad = (used < 0) | (used >= n_features)
    if np.any(bad):
        node = int(np.flatnonzero(internal)[np.flatnonzero(bad)[0]])
        _fail(where, f"node {node} splits on feature {int(feature[node])}, outside "
                     f"[0, {n_features})")


def _check_tree(tree: Any, where: str, n_features_in: int | None) -> None:
    import numpy as np

    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    if len(left) != tree.node_count:
        _fail(where, f"node_count {tree.node_count} but {len(left)} nodes")
    internal = _check_structure(left, right, where)
    n_features = int(tree.n_features)
    if n_features_in is not None and n_features != int(n_features_in):
        _fail(where, f"the tree has {n_features} features, its estimator {n_features_in}")
    _check_features(np.asarray(tree.feature, dtype=np.int64), internal, n_features, where)
    threshold = np.asarray(tree.threshold)[internal]
    if not np.all(np.isfinite(threshold)):
        _fail(where, "a split threshold is not finite")
    depth = _depth(left, right, internal)
    if depth > int(tree.max_depth):
        _fail(where, f"max_depth {tree.max_depth} but the nodes are {depth} deep")
    if np.asarray(tree.value).shape[0] != len(left):
        _fail(where, f"value has {np.asarray(tree.value).shape[0]} rows for {len(left)} nodes")


def _check_predictor(predictor: Any, where: str, n_features_in: int | None) -> None:
    import numpy as np

    nodes = predictor.nodes
    leaf = np.asarray(nodes["is_leaf"]).astype(bool)
    left = np.where(leaf, _LEAF, np.asarray(nodes["left"], dtype=np.int64))
    right = np.where(leaf, _LEAF, np.asarray(nodes["right"], dtype=np.int64))
    internal = _check_structure(left, right, where)
    if n_features_in is not None:
        _check_features(np.asarray(nodes["feature_idx"], dtype=np.int64), internal,
                        int(n_features_in), where)
    if not np.all(np.isfinite(np.asarray(nodes["num_threshold"])[internal])):
        _fail(where, "a split threshold is not finite")
    categorical = internal & np.asarray(nodes["is_categorical"]).astype(bool)
    if np.any(categorical):
        bitset = np.asarray(nodes["bitset_idx"], dtype=np.int64)[categorical]
        for name in ("binned_left_cat_bitsets", "raw_left_cat_bitsets"):
            rows = len(getattr(predictor, name))
            if np.any((bitset < 0) | (bitset >= rows)):
                _fail(where, f"a categorical split's bitset_idx is outside {name} ({rows} rows)")
