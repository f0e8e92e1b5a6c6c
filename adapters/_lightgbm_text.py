"""Checking a LightGBM model string before LightGBM parses it.

LightGBM's C++ reader trusts its input: ``tree_sizes`` offsets are added to the buffer's
address unchecked, a tree's ``num_leaves`` sizes its arrays before a value is read, the tree
reader scans for ``=`` without looking for the end of the buffer, a child index is followed
at predict time without a bounds check (a cycle never ends), ``num_tree_per_iteration=0``
divides by zero, and a parameter line without ``:`` indexes past a vector. A text bundle is
the adapter's *safe* format, so :func:`check_model_text` reads the whole document first, in
Python, and refuses with :class:`~alphazoo.BundleFormatError` anything LightGBM's writer
would not produce in the places that matter:

- the header: ``num_class``, ``num_tree_per_iteration`` (equal to it), ``max_feature_idx``
  and as many ``feature_names``/``feature_infos`` (and ``monotone_constraints``) entries;
- ``tree_sizes``: each offset must land on its tree's ``Tree=`` line;
- every tree: at most 22 ``key=value`` lines of known keys, closed by an empty line; every
  array exactly as long as ``num_leaves`` (or ``num_cat``, or the linear leaves' feature
  counts) says; split features and linear leaf features below ``max_feature_idx + 1``;
  children forming one binary tree over all nodes and leaves, each reached once from the
  root; decision types LightGBM defines; categorical thresholds indexing ``cat_boundaries``,
  which run from 0 up to the length of ``cat_threshold``; every value of the float arrays
  (``leaf_value``, ``threshold``, ``shrinkage``, ...) a number as LightGBM writes one, and of
  the count arrays an integer;
- parameter lines shaped ``[name: value]``; the ``pandas_categorical`` JSON line bounded
  (:func:`~alphazoo.limits.check_json_text`) and a list of lists of scalars.

So every count LightGBM allocates by is the count of values actually in the text, whose size
the bundle's limits already bound, and every index it follows is in range. (Measured with
lightgbm 4.7.0: fed to ``Booster(model_str=)`` unchecked, a ``tree_sizes`` past the end, a
parameter line without ``:`` or more trees per iteration than classes crash the process with
a segmentation fault, a value that is not a number (``x1`` in ``leaf_value``) aborts it, a
child cycle hangs ``predict``, and a child index or split feature out of range makes
``predict`` read outside the tree's arrays and return whatever it found.)
"""

from __future__ import annotations

import json
import re
from typing import Any

from alphazoo.errors import BundleFormatError
from alphazoo.limits import LoadLimits, check_bytes, check_json_text

__all__ = ["MAX_TREE_LINES", "TREE_KEYS", "check_model_text"]

#: The most ``key=value`` lines LightGBM's tree reader takes from one tree.
MAX_TREE_LINES = 22
#: The keys a tree block may hold (what ``Tree::ToString`` writes).
TREE_KEYS = frozenset({
    "num_leaves", "num_cat", "split_feature", "split_gain", "threshold", "decision_type",
    "left_child", "right_child", "leaf_value", "leaf_weight", "leaf_count", "internal_value",
    "internal_weight", "internal_count", "cat_boundaries", "cat_threshold", "is_linear",
    "shrinkage", "leaf_const", "num_features", "leaf_features", "leaf_coeff",
})
# Arrays with one value per internal node, and with one per leaf.
_PER_NODE = ("split_feature", "split_gain", "threshold", "decision_type", "left_child",
             "right_child", "internal_value", "internal_weight", "internal_count")
_PER_LEAF = ("leaf_value", "leaf_weight", "leaf_count", "leaf_const", "num_features")
_NODE_REQUIRED = ("split_feature", "threshold", "left_child", "right_child")
_PARAMETER_LINE = re.compile(r"\[[A-Za-z0-9_]+: .*\]")
_INT = re.compile(r"-?[0-9]+")
_INT_LINE = re.compile(r"-?[0-9]+(?: -?[0-9]+)*")
# A number as LightGBM writes one ("{:.17g}" through fmt: digits, an optional fraction and
# exponent, or inf/nan spelled so). Its reader (AtofPrecise, then strtod) raises a C++
# exception on anything else, and it reads trees on OpenMP threads, where an exception
# aborts the process; so every value of every float array must match this.
_NUMBER = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|-?inf|-?nan"
_NUMBER_LINE = re.compile(rf"(?>{_NUMBER})(?: (?>{_NUMBER}))*+")
# The finite numbers "{:.17g}" writes, matched possessively: about twice as fast as the full
# grammar, which a line is tried against only when this fails.
_FINITE_LINE = re.compile(r"-?[0-9]++(?:\.[0-9]++)?+(?:e[-+][0-9]++)?+"
                          r"(?: -?[0-9]++(?:\.[0-9]++)?+(?:e[-+][0-9]++)?+)*+")
# Linear trees' leaf_coeff separates leaves by runs of spaces.
_SPACED_NUMBERS = re.compile(rf" *(?:(?:{_NUMBER})(?: +(?:{_NUMBER}))*)? *")
_FLOAT_KEYS = ("split_gain", "threshold", "leaf_value", "leaf_weight", "internal_value",
               "internal_weight", "shrinkage", "leaf_const")
_INT_KEYS = ("leaf_count", "internal_count")
_WHAT = "model.txt"
# Header counts are far below these in any real model; the bounds keep arithmetic on them
# (and LightGBM's int32 fields) from overflowing before the counts are compared with the text.
_MAX_COUNT = 2**31 - 1


def _fail(problem: str) -> BundleFormatError:
    return BundleFormatError(_WHAT, problem + "; it is not a model string LightGBM wrote")


def _int(text: str, what: str, minimum: int = 0, maximum: int = _MAX_COUNT) -> int:
    if not _INT.fullmatch(text):
        raise _fail(f"{what} is {text[:40]!r}, not an integer")
    value = int(text)
    if not minimum <= value <= maximum:
        raise _fail(f"{what} is {value}, outside {minimum}..{maximum}")
    return value


def _values(text: str, what: str) -> list[str]:
    """The space-separated values of an array line (LightGBM splits on single spaces)."""
    if text == "":
        return []
    values = text.split(" ")
    if "" in values:
        raise _fail(f"{what} has an empty value (two spaces, or one at an end)")
    return values


def _count(text: str, what: str) -> int:
    """How many values an array line holds, without splitting it (the common case)."""
    if text == "":
        return 0
    if "  " in text or text[0] == " " or text[-1] == " ":
        raise _fail(f"{what} has an empty value (two spaces, or one at an end)")
    return text.count(" ") + 1


def _ints(text: str, what: str, count: int, minimum: int, maximum: int) -> list[int]:
    """The integers of an array line: exactly ``count``, each in ``minimum..maximum``.

    ASCII digits only (one pattern over the whole line): Python's ``int`` also reads ``1_0``
    and other scripts' digits, which LightGBM's ``Atoi`` would read differently.
    """
    if count == 0 and text == "":
        return []
    if not _INT_LINE.fullmatch(text):
        raise _fail(f"{what} is not a line of integers ({text[:40]!r})")
    values = list(map(int, text.split(" ")))
    if len(values) != count:
        raise _fail(f"{what} has {len(values)} values, not {count}")
    low, high = min(values), max(values)
    if low < minimum or high > maximum:
        bad = low if low < minimum else high
        raise _fail(f"{what} is {bad}, outside {minimum}..{maximum}")
    return values


def check_model_text(data: bytes, limits: LoadLimits | None = None) -> str:
    """Check the LightGBM model string ``data`` and return it as text.

    Raises :class:`~alphazoo.BundleLimitError` when it is larger than ``limits.max_bytes`` and
    :class:`~alphazoo.BundleFormatError` when LightGBM's reader could be made to read out of
    bounds, allocate more than the text holds, or loop (see the module's docstring).
    """
    limits = limits or LoadLimits()
    check_bytes(len(data), limits, f"{_WHAT} (LightGBM model string)")
    if b"\0" in data or b"\r" in data:
        raise _fail("it holds NUL or carriage-return bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(f"it is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    lines = text.split("\n")
    header, first_tree = _header(lines)
    offset = sum(len(line) + 1 for line in lines[:first_tree])
    end = _trees(text, offset, header)
    _tail(text[end:], limits)
    return text


def _header(lines: list[str]) -> tuple[dict[str, Any], int]:
    """The header's checked values and the index of the first ``Tree=`` line."""
    if not lines or lines[0] != "tree":
        raise _fail("it does not start with the line 'tree'")
    keys: dict[str, str] = {}
    index = 1
    while index < len(lines) and not lines[index].startswith("Tree="):
        line = lines[index]
        if line.startswith("end of trees"):
            break
        if line:
            key, _, value = line.partition("=")
            if "=" in value and key not in ("feature_names", "monotone_constraints"):
                raise _fail(f"header line {index + 1} has more than one '='")
            keys[key] = value
        index += 1
    for key in ("num_class", "label_index", "max_feature_idx", "feature_names",
                "feature_infos"):
        if key not in keys:
            raise _fail(f"the header has no {key}")
    num_class = _int(keys["num_class"], "num_class", 1)
    per_iteration = _int(keys.get("num_tree_per_iteration", keys["num_class"]),
                         "num_tree_per_iteration", 1)
    if per_iteration != num_class:
        raise _fail(f"num_tree_per_iteration ({per_iteration}) differs from num_class "
                    f"({num_class})")
    _int(keys["label_index"], "label_index")
    features = _int(keys["max_feature_idx"], "max_feature_idx") + 1
    for key in ("feature_names", "feature_infos", "monotone_constraints"):
        if key in keys and len(_values(keys[key], key)) != features:
            raise _fail(f"{key} does not have max_feature_idx + 1 = {features} entries")
    sizes = None
    if "tree_sizes" in keys:
        sizes = [_int(v, "tree_sizes") for v in _values(keys["tree_sizes"], "tree_sizes")]
    return {"features": features, "per_iteration": per_iteration, "sizes": sizes}, index


def _trees(text: str, start: int, header: dict[str, Any]) -> int:
    """Check every tree block from ``start`` (the first ``Tree=`` line); return the offset
    just past the last one."""
    position, starts = start, []
    while text.startswith("Tree=", position):
        starts.append(position)
        line_end = text.find("\n", position)
        if line_end < 0:
            raise _fail(f"tree {len(starts) - 1} has no lines")
        position = _tree(text, line_end + 1, header["features"], len(starts) - 1)
        while text.startswith("\n", position):  # LightGBM skips blank lines between trees
            position += 1
    sizes = header["sizes"]
    if sizes is not None:
        if len(sizes) != len(starts):
            raise _fail(f"tree_sizes lists {len(sizes)} trees; the text holds {len(starts)}")
        boundary = start
        for number, (size, actual) in enumerate(zip(sizes, starts, strict=True)):
            if boundary != actual:
                raise _fail(f"tree_sizes puts tree {number} at offset {boundary - start}, "
                            f"but it starts at {actual - start}")
            boundary += size
    return position


def _tree(text: str, position: int, features: int, number: int) -> int:
    """Check the tree block at ``position``; return the offset just past its closing empty
    line."""
    fields: dict[str, str] = {}
    while True:
        end = text.find("\n", position)
        if end < 0:
            raise _fail(f"tree {number} is not closed by an empty line")
        line = text[position:end]
        position = end + 1
        if line == "":
            break
        key, sep, value = line.partition("=")
        if not sep or key not in TREE_KEYS or key in fields:
            raise _fail(f"tree {number} has the line {line[:40]!r}")
        fields[key] = value
        if len(fields) > MAX_TREE_LINES:
            raise _fail(f"tree {number} has more than {MAX_TREE_LINES} lines")
    what = f"tree {number}"
    for key in ("num_leaves", "num_cat", "leaf_value"):
        if key not in fields:
            raise _fail(f"{what} has no {key}")
    leaves = _int(fields["num_leaves"], f"{what} num_leaves", 1)
    num_cat = _int(fields["num_cat"], f"{what} num_cat")
    linear = _int(fields.get("is_linear", "0"), f"{what} is_linear", 0, 1) == 1
    # A one-leaf tree's reader stops after leaf_value and leaf_count (which it reads without
    # a count check, stopping at the string's end); LightGBM writes its other arrays empty.
    for key in _PER_LEAF if leaves > 1 or linear else ("leaf_value",):
        if key in fields and _count(fields[key], f"{what} {key}") != leaves:
            raise _fail(f"{what} {key} does not have num_leaves = {leaves} values")
    if leaves > 1 or linear:
        nodes = leaves - 1
        for key in _NODE_REQUIRED:
            if key not in fields:
                raise _fail(f"{what} has no {key}")
        for key in _PER_NODE:
            if key in fields and _count(fields[key], f"{what} {key}") != nodes:
                raise _fail(f"{what} {key} does not have num_leaves - 1 = {nodes} values")
        _ints(fields["split_feature"], f"{what} split_feature", nodes, 0, features - 1)
        left = _ints(fields["left_child"], f"{what} left_child", nodes, -leaves, nodes - 1)
        right = _ints(fields["right_child"], f"{what} right_child", nodes, -leaves, nodes - 1)
        _check_shape(left, right, leaves, what)
        types = _ints(fields.get("decision_type", " ".join(["0"] * nodes)) if nodes else "",
                      f"{what} decision_type", nodes, 0, 15)
        _check_categorical(fields, types, num_cat, what)
    if linear:
        _check_linear(fields, leaves, features, what)
    _check_numbers(fields, what)
    return position


def _check_numbers(fields: dict[str, str], what: str) -> None:
    """Every value of the float arrays a number LightGBM's reader parses, every value of the
    count arrays an integer (one compiled pattern per line, so the check stays linear)."""
    for key in _FLOAT_KEYS:
        value = fields.get(key)
        if value and not (_FINITE_LINE.fullmatch(value) or _NUMBER_LINE.fullmatch(value)):
            raise _fail(f"{what} {key} is not a line of numbers ({_bad_value(value)!r})")
    for key in _INT_KEYS:
        value = fields.get(key)
        if value and not _INT_LINE.fullmatch(value):
            raise _fail(f"{what} {key} is not a line of integers ({_bad_value(value)!r})")
    value = fields.get("leaf_coeff")
    if value and not _SPACED_NUMBERS.fullmatch(value):
        raise _fail(f"{what} leaf_coeff is not a line of numbers ({_bad_value(value)!r})")


def _bad_value(line: str) -> str:
    """The first value of ``line`` that is not a number, for the error message."""
    number = re.compile(_NUMBER)
    return next((v for v in line.split(" ") if v and not number.fullmatch(v)), line)[:40]


def _check_shape(left: list[int], right: list[int], leaves: int, what: str) -> None:
    """Children form one binary tree: every node and leaf reached exactly once from node 0."""
    if not left:
        return
    seen_nodes, seen_leaves = [False] * len(left), [False] * leaves
    stack = [0]
    seen_nodes[0] = True
    while stack:
        node = stack.pop()
        for child in (left[node], right[node]):
            if child < 0:
                leaf = ~child
                if seen_leaves[leaf]:
                    raise _fail(f"{what} reaches leaf {leaf} twice")
                seen_leaves[leaf] = True
            else:
                if seen_nodes[child]:
                    raise _fail(f"{what} reaches node {child} twice (a cycle or a shared "
                                "subtree)")
                seen_nodes[child] = True
                stack.append(child)
    if not all(seen_nodes) or not all(seen_leaves):
        raise _fail(f"{what} has nodes or leaves its root does not reach")


def _check_categorical(fields: dict[str, str], types: list[int], num_cat: int,
                       what: str) -> None:
    """Decision types LightGBM defines; categorical splits indexing valid bitsets."""
    for value in types:
        if (value >> 2) & 3 == 3:
            raise _fail(f"{what} has decision_type {value} (missing type 3 is undefined)")
    categorical = [i for i, value in enumerate(types) if value & 1]
    if num_cat == 0:
        if categorical:
            raise _fail(f"{what} has categorical splits but num_cat=0")
        return
    for key in ("cat_boundaries", "cat_threshold"):
        if key not in fields:
            raise _fail(f"{what} has num_cat={num_cat} but no {key}")
    bounds = _ints(fields["cat_boundaries"], f"{what} cat_boundaries", num_cat + 1, 0,
                   _MAX_COUNT)
    if bounds[0] != 0 or any(b > a for a, b in zip(bounds[1:], bounds, strict=False)):
        raise _fail(f"{what} cat_boundaries do not rise from 0")
    _ints(fields["cat_threshold"], f"{what} cat_threshold", bounds[-1], 0, 2**32 - 1)
    thresholds = _values(fields["threshold"], f"{what} threshold")
    for node in categorical:
        _int(thresholds[node], f"{what} categorical threshold", 0, num_cat - 1)


def _check_linear(fields: dict[str, str], leaves: int, features: int, what: str) -> None:
    """A linear tree's per-leaf feature lists: counts that add up, features in range."""
    counts = _ints(fields.get("num_features", ""), f"{what} num_features",
                   leaves if "num_features" in fields else 0, 0, features)
    total = sum(counts)
    # These two lines separate leaves by extra spaces (LightGBM's writer): split on any run.
    if "leaf_features" in fields:
        values = fields["leaf_features"].split()
        if len(values) != total:
            raise _fail(f"{what} leaf_features does not have {total} values")
        for value in values:
            _int(value, f"{what} leaf_features", 0, features - 1)
    if "leaf_coeff" in fields and len(fields["leaf_coeff"].split()) != total:
        raise _fail(f"{what} leaf_coeff does not have {total} values")


def _tail(rest: str, limits: LoadLimits) -> None:
    """After the trees: parameter lines shaped ``[name: value]`` and the pandas categories."""
    inside = False
    lines = rest.split("\n")
    for line in lines:
        if line == "parameters:":
            inside = True
        elif line == "end of parameters":
            inside = False
        elif inside and line and not _PARAMETER_LINE.fullmatch(line):
            raise _fail(f"the parameter line {line[:40]!r} is not '[name: value]'")
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    prefix = "pandas_categorical:"
    if last.startswith(prefix):
        payload = last[len(prefix):].encode()
        check_json_text(payload, limits, f"{_WHAT} pandas_categorical")
        try:
            categories = json.loads(payload)
        except ValueError:
            raise _fail("its pandas_categorical line is not JSON") from None
        scalar = (str, int, float, bool)
        if categories is not None and not (
            isinstance(categories, list)
            and all(isinstance(c, list) and all(isinstance(v, scalar) for v in c)
                    for c in categories)):
            raise _fail("its pandas_categorical is not a list of lists of values")
