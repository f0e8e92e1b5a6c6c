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
- ``KDTree`` and ``BallTree`` (neighbour indexes): see :func:`_check_binary_tree`.

A failure is a :class:`~alphazoo.BundleFormatError` naming the tree and the rule.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from alphazoo.errors import BundleFormatError

__all__ = ["validate_trees"]

_LEAF = -1
#: A bound on the objects walked to find trees: a model is a finite graph, but a bound keeps
#: the walk O(model) whatever a payload builds.
_MAX_OBJECTS = 10_000_000
#: Tree levels walked one numpy pass each before depths switch to pointer jumping: deeper
#: than scikit-learn grows trees on most data, shallow enough to bound a crafted chain.
_LEVEL_PASSES = 64


@dataclass
class _Nodes:
    """One tree's node arrays, as the batch check reads them."""

    where: str
    left: Any
    right: Any
    feature: Any
    threshold: Any
    n_features: int | None
    max_depth: int | None = None


def validate_trees(model: Any, where: str) -> int:
    """Check every tree reachable from ``model``; return how many were checked.

    All trees are checked together, as one concatenation of their node arrays: a 100-tree
    forest costs a few numpy passes, not a few hundred.
    """
    import numpy as np

    tree_module = sys.modules.get("sklearn.tree._tree")
    tree_class = getattr(tree_module, "Tree", None)
    predictor_module = sys.modules.get(
        "sklearn.ensemble._hist_gradient_boosting.predictor")
    predictor_class = getattr(predictor_module, "TreePredictor", None)
    neighbor_classes = tuple(
        cls for cls in (getattr(sys.modules.get("sklearn.neighbors._kd_tree"), "KDTree", None),
                        getattr(sys.modules.get("sklearn.neighbors._ball_tree"), "BallTree",
                                None))
        if isinstance(cls, type))
    batch: list[_Nodes] = []
    checked = 0
    for path, obj, owner in _walk(model):
        n_features_in = getattr(owner, "n_features_in_", None)
        if neighbor_classes and isinstance(obj, neighbor_classes):
            _check_binary_tree(obj, f"{where}: {_path(path)}")
            checked += 1
        elif tree_class is not None and isinstance(obj, tree_class):
            batch.append(_tree_nodes(obj, f"{where}: {_path(path)}", n_features_in))
        elif predictor_class is not None and isinstance(obj, predictor_class):
            batch.append(_predictor_nodes(obj, f"{where}: {_path(path)}", n_features_in))
    if batch:
        _check_batch(batch, np)
    return len(batch) + checked


def _walk(root: Any) -> Iterator[tuple[Any, Any, Any]]:
    """Every object reachable through attributes, lists, tuples, dicts and object arrays, with
    its path (see :func:`_path`, formatted only for the trees) and the estimator holding it."""
    import numpy as np

    seen: set[int] = set()
    stack: list[tuple[Any, Any, Any]] = [(("model",), root, None)]
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
                stack.extend(((path, i), item, owner) for i, item in enumerate(obj.flat))
            continue
        if isinstance(obj, (list, tuple)):
            stack.extend(((path, i), item, owner) for i, item in enumerate(obj))
        elif isinstance(obj, dict):
            stack.extend(((path, repr(k)), item, owner) for k, item in obj.items())
        else:
            attributes = getattr(obj, "__dict__", None)
            if isinstance(attributes, dict):
                holder = obj if hasattr(obj, "n_features_in_") else owner
                stack.extend(((path, "." + k), item, holder) for k, item in attributes.items())


def _path(path: Any) -> str:
    """``model.estimators_[0].tree_`` from the nested tuples :func:`_walk` builds."""
    parts = []
    while len(path) == 2:
        path, step = path
        parts.append(step if isinstance(step, str) and step.startswith(".") else f"[{step}]")
    return path[0] + "".join(reversed(parts))


def _fail(where: str, rule: str) -> None:
    raise BundleFormatError(where, f"tree node arrays are invalid: {rule}")


def _tree_nodes(tree: Any, where: str, n_features_in: int | None) -> _Nodes:
    """A ``Tree``'s arrays, after the checks that need no pass over its nodes."""
    import numpy as np

    left = np.asarray(tree.children_left, dtype=np.int64)
    count = int(tree.node_count)
    if count < 1 or len(left) != count:
        _fail(where, f"node_count {count} but {len(left)} nodes")
    n_features = int(tree.n_features)
    if n_features_in is not None and n_features != int(n_features_in):
        _fail(where, f"the tree has {n_features} features, its estimator {n_features_in}")
    if np.asarray(tree.value).shape[0] != count:
        _fail(where, f"value has {np.asarray(tree.value).shape[0]} rows for {count} nodes")
    max_depth = int(tree.max_depth)
    if not 0 <= max_depth < count:
        # decision_path sizes its buffer from max_depth: it must be the real depth or more,
        # and a tree of n nodes is less than n deep.
        _fail(where, f"max_depth {max_depth} for {count} nodes")
    return _Nodes(where, left, np.asarray(tree.children_right, dtype=np.int64),
                  np.asarray(tree.feature, dtype=np.int64), np.asarray(tree.threshold),
                  n_features, max_depth)


def _predictor_nodes(predictor: Any, where: str, n_features_in: int | None) -> _Nodes:
    """A ``TreePredictor``'s records as children arrays (leaves -1), categorical splits'
    bitset indexes checked here."""
    import numpy as np

    nodes = predictor.nodes
    if len(nodes) < 1:
        _fail(where, "no nodes")
    leaf = np.asarray(nodes["is_leaf"]).astype(bool)
    left = np.where(leaf, _LEAF, np.asarray(nodes["left"], dtype=np.int64))
    right = np.where(leaf, _LEAF, np.asarray(nodes["right"], dtype=np.int64))
    categorical = ~leaf & np.asarray(nodes["is_categorical"]).astype(bool)
    if np.any(categorical):
        bitset = np.asarray(nodes["bitset_idx"], dtype=np.int64)[categorical]
        for name in ("binned_left_cat_bitsets", "raw_left_cat_bitsets"):
            rows = len(getattr(predictor, name))
            if np.any((bitset < 0) | (bitset >= rows)):
                _fail(where, f"a categorical split's bitset_idx is outside {name} ({rows} rows)")
    return _Nodes(where, left, right, np.asarray(nodes["feature_idx"], dtype=np.int64),
                  np.asarray(nodes["num_threshold"]),
                  None if n_features_in is None else int(n_features_in))


def _check_batch(batch: list[_Nodes], np: Any) -> None:
    """The structural rules over every node of every tree at once (see the module docstring).

    Node ``i`` of tree ``t`` is global node ``offsets[t] + i``; a failure is reported with
    the tree's path and the node's own index.
    """
    counts = np.array([len(t.left) for t in batch], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tree_of = np.repeat(np.arange(len(batch)), counts)
    local = np.arange(int(counts.sum())) - offsets[tree_of]
    left = np.concatenate([t.left for t in batch])
    right = np.concatenate([t.right for t in batch])
    if any(len(t.right) != len(t.left) for t in batch):
        bad = next(t for t in batch if len(t.right) != len(t.left))
        _fail(bad.where, f"{len(bad.left)} left but {len(bad.right)} right children")

    def fail_at(mask: Any, rule: Any) -> None:
        node = int(np.flatnonzero(mask)[0])
        _fail(batch[int(tree_of[node])].where, rule(node, int(local[node])))

    leaf_left, leaf_right = left == _LEAF, right == _LEAF
    if np.any(leaf_left != leaf_right):
        fail_at(leaf_left != leaf_right, lambda g, i: f"node {i} has one child (left "
                                                      f"{int(left[g])}, right {int(right[g])})")
    internal = ~leaf_left
    size = counts[tree_of]
    for side, children in (("left", left), ("right", right)):
        outside = internal & ((children <= local) | (children >= size))
        if np.any(outside):
            fail_at(outside, lambda g, i, c=children, s=side: (
                f"node {i}'s {s} child {int(c[g])} is not a later node in [1, {int(size[g])})"))
    # Children are now in range: make them global and count each node's parents.
    parent = np.full(len(left), -1, dtype=np.int64)
    glob = np.flatnonzero(internal)
    targets = np.concatenate([left[glob] + offsets[tree_of[glob]],
                              right[glob] + offsets[tree_of[glob]]])
    parents = np.bincount(targets, minlength=len(left))
    if np.any(parents > 1):
        fail_at(parents > 1, lambda g, i: f"node {i} is the child of two parents (a shared "
                                          "subtree or a cycle)")
    roots = local == 0
    if np.any(~roots & (parents == 0)):
        fail_at(~roots & (parents == 0), lambda g, i: f"node {i} has no parent: not one tree")
    parent[targets] = np.concatenate([glob, glob])
    n_features = np.array([-1 if t.n_features is None else t.n_features for t in batch])
    feature = np.concatenate([t.feature for t in batch])
    limit = n_features[tree_of]
    bad = internal & ((feature < 0) | ((limit >= 0) & (feature >= limit)))
    if np.any(bad):
        fail_at(bad, lambda g, i: f"node {i} splits on feature {int(feature[g])}, outside "
                                  f"[0, {int(limit[g])})")
    threshold = np.concatenate([t.threshold for t in batch])
    if np.any(internal & ~np.isfinite(threshold)):
        fail_at(internal & ~np.isfinite(threshold),
                lambda g, i: f"node {i}'s split threshold {threshold[g]} is not finite")
    kids = np.full((len(left), 2), _LEAF, dtype=np.int64)
    kids[glob, 0] = targets[:len(glob)]
    kids[glob, 1] = targets[len(glob):]
    _check_depths(batch, parent, kids, offsets, np)


def _check_depths(batch: list[_Nodes], parent: Any, kids: Any, offsets: Any, np: Any) -> None:
    """Each tree's real depth against its ``max_depth``.

    Level by level from the roots (``kids``: each node's two global children, -1 for a
    leaf), each pass touching only that level's nodes: a forest costs its depth in small
    numpy calls. Past :data:`_LEVEL_PASSES` levels (a deep or crafted chain, where that would
    be one numpy call per node) it falls back to pointer jumping over ``parent``: log2(depth)
    passes over all nodes.
    """
    depth = np.zeros(len(parent), dtype=np.int64)
    frontier = offsets
    level = 0
    while frontier.size and level < _LEVEL_PASSES:
        frontier = kids[frontier].ravel()
        frontier = frontier[frontier >= 0]
        level += 1
        depth[frontier] = level
    if frontier.size:
        depth = _depths_by_pointer_jumping(parent, np)
    deepest = np.maximum.reduceat(depth, offsets)
    for tree, real in zip(batch, deepest.tolist()):
        if tree.max_depth is not None and real > tree.max_depth:
            _fail(tree.where, f"max_depth {tree.max_depth} but the nodes are {real} deep")


def _depths_by_pointer_jumping(parent: Any, np: Any) -> Any:
    """Every node's depth in log2(depth) passes (each node's parent is earlier, so the
    ancestors chain ends)."""
    depth = (parent >= 0).astype(np.int64)
    ancestor = parent.copy()
    while np.any(ancestor >= 0):
        live = ancestor >= 0
        depth[live] += depth[ancestor[live]]
        ancestor[live] = ancestor[ancestor[live]]
    return depth


def _check_binary_tree(tree: Any, where: str) -> None:
    """A ``KDTree`` or ``BallTree`` (neighbour indexes): its queries index ``data`` with
    ``idx_array`` values, ``idx_array`` with each node's ``[idx_start, idx_end)``, and walk
    to nodes ``2i+1`` and ``2i+2`` of non-leaf nodes, all unchecked."""
    import numpy as np

    state = tree.__getstate__()
    data, idx_array, node_data, node_bounds = (np.asarray(a) for a in state[:4])
    n_levels, weights = state[5], state[-1]
    if data.ndim != 2 or idx_array.ndim != 1 or len(idx_array) != len(data):
        _fail(where, f"data {list(data.shape)} and idx_array {list(idx_array.shape)} disagree")
    samples, features = data.shape
    if len(idx_array) and (idx_array.min() < 0 or idx_array.max() >= samples):
        _fail(where, f"an idx_array entry lies outside [0, {samples})")
    count = len(node_data)
    if not isinstance(n_levels, int) or not 1 <= n_levels <= 62 or count != 2**n_levels - 1:
        _fail(where, f"{count} nodes for n_levels {n_levels!r} (it must be 2**n_levels - 1)")
    start = np.asarray(node_data["idx_start"], dtype=np.int64)
    end = np.asarray(node_data["idx_end"], dtype=np.int64)
    if np.any((start < 0) | (start > end) | (end > samples)):
        _fail(where, f"a node's [idx_start, idx_end) lies outside [0, {samples}]")
    childless = 2 * np.arange(count) + 1 >= count
    if np.any(childless & (np.asarray(node_data["is_leaf"]) == 0)):
        _fail(where, "a node of the last level is not marked a leaf: its children do not exist")
    if node_bounds.ndim != 3 or node_bounds.shape[1:] != (count, features):
        _fail(where, f"node_bounds {list(node_bounds.shape)} for {count} nodes of "
                     f"{features} features")
    if weights is not None and len(np.asarray(weights)) != samples:
        _fail(where, f"sample_weight has {len(np.asarray(weights))} entries for {samples} "
                     "samples")
