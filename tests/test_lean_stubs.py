"""LEAN's Python API as LEAN's own stubs describe it: ``Algorithm.object_store`` and the
``Algorithm`` members alphazoo shares with ``QCAlgorithm``, checked against the installed
``quantconnect-stubs`` (the ``test`` extra), so ported QuantConnect code keeps working.

The stubs are read as text (``ast``), never imported. A test fails when LEAN has a member we
claim and it is missing here, or when names, argument order, optional arguments or (for the
store) return types differ.
"""

from __future__ import annotations

import ast
import inspect
import uuid
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from alphazoo import ObjectStore
from alphazoo.contrib.algorithm import Algorithm, KeyValuePair, LeanObjectStore, run_backtest
from alphazoo.datasets import load_prices

# (name, optional) per parameter, self excluded.
Params = list[tuple[str, bool]]


def _stub_module(relative: str) -> ast.Module:
    try:
        dist = metadata.distribution("quantconnect-stubs")
    except metadata.PackageNotFoundError:
        pytest.skip("quantconnect-stubs is not installed (pip install -e '.[test]')")
    path = Path(dist.locate_file(relative))
    if not path.is_file():
        pytest.fail(f"quantconnect-stubs {dist.version} has no {relative}: LEAN moved its API")
    return ast.parse(path.read_text(encoding="utf-8"))


def _classes(module: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in module.body if isinstance(node, ast.ClassDef)}


def _params(fn: ast.FunctionDef) -> Params:
    args = fn.args.args[1:]  # self
    first_default = len(args) - len(fn.args.defaults)
    return [(a.arg, i >= first_default) for i, a in enumerate(args)]


class StubMember:
    """One member of a stub class: a property (with its type) or a method's overloads."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_property = False
        self.returns = ""
        self.overloads: list[tuple[Params, str]] = []


def _members(cls: ast.ClassDef) -> dict[str, StubMember]:
    found: dict[str, StubMember] = {}
    for node in cls.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        decorators = {ast.unparse(d) for d in node.decorator_list}
        if any(d.endswith(".setter") for d in decorators):
            continue
        member = found.setdefault(node.name, StubMember(node.name))
        returns = ast.unparse(node.returns) if node.returns else "None"
        if "property" in decorators:
            member.is_property, member.returns = True, returns
        else:
            member.overloads.append((_params(node), returns))
    return found


def _call_overloads(classes: dict[str, ast.ClassDef], generic: str) -> list[tuple[Params, str]]:
    """The ``__call__`` overloads behind a generic-method property (``_ObjectStore_ReadJson``)."""
    calls: list[tuple[Params, str]] = []
    for name in (generic, generic.replace("_", "_Typed_", 1)):
        if name in classes and "__call__" in (members := _members(classes[name])):
            calls += members["__call__"].overloads
    return calls


def _ours(fn: Any) -> tuple[Params, bool, inspect.Signature]:
    """Our parameters (keyword-only extras and **options left out) and whether *args is used."""
    signature = inspect.signature(fn)
    params, var_positional = [], False
    for p in signature.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.VAR_POSITIONAL:
            var_positional = True
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            params.append((p.name, p.default is not p.empty))
    return params, var_positional, signature


def _conformance(name: str, lean: Params, fn: Any, *, complete: bool) -> list[str]:
    """What keeps a call written against LEAN's overload ``lean`` from working on ``fn``.

    ``complete``: every LEAN parameter must exist here too (the store); else LEAN's trailing
    optional parameters may be left out (a call passing one fails loudly with a TypeError).
    """
    ours, var_positional, signature = _ours(fn)
    problems = []
    if var_positional:  # names cannot be compared: LEAN's positional calls must bind
        required = [object() for _, optional in lean if not optional]
        for args in (required, [object()] * len(lean)):
            try:
                signature.bind(*([None] if "self" in signature.parameters else []), *args)
            except TypeError as exc:
                problems.append(f"{name}: a call with {len(args)} argument(s) fails: {exc}")
        return problems
    shown = f"{name}({', '.join(n + ('=...' if o else '') for n, o in lean)})"
    for position, ((lean_name, lean_optional), (our_name, our_optional)) in enumerate(
            zip(lean, ours)):
        if lean_name != our_name:
            problems.append(f"{shown}: argument {position} is {our_name!r} here")
        elif lean_optional and not our_optional:
            problems.append(f"{shown}: {our_name!r} is optional in LEAN, required here")
    for lean_name, lean_optional in lean[len(ours):]:
        if complete or not lean_optional:
            problems.append(f"{shown}: no argument {lean_name!r} here")
    for our_name, our_optional in ours[len(lean):]:
        if not our_optional:
            problems.append(f"{shown}: {our_name!r} is required here, absent in LEAN")
    return problems


# -- Algorithm.object_store ------------------------------------------------------------------

#: LEAN's ObjectStore members with no counterpart, and why (see alphazoo.contrib._lean_store).
STORE_LEFT_OUT = {
    "__init__": "compared separately: LEAN wraps an IObjectStore, we an alphazoo.ObjectStore",
    "initialize": "the engine calls it with account credentials; a backtest's store is ready",
    "error_raised": "a .NET event; alphazoo raises typed AlphazooError exceptions instead",
}
#: LEAN's return annotations and what the facade returns in their place.
STORE_RETURNS = {
    "bool": "bool", "str": "str", "int": "int", "None": "None",
    "typing.List[int]": "bytes",  # byte[]
    "System.Collections.Generic.ICollection[str]": "list[str]",
    "typing.Iterator[System.Collections.Generic.KeyValuePair[str, typing.List[int]]]":
        "Iterator[KeyValuePair]",
    "System.Collections.Generic.IEnumerator[System.Collections.Generic.KeyValuePair[str, "
    "typing.List[int]]]": "Iterator[KeyValuePair]",
    "QuantConnect_Storage_ObjectStore_ReadJson_T": "Any",
    "QuantConnect_Storage_ObjectStore_ReadXml_T": "Any",
}


@pytest.fixture(scope="module")
def store_stubs() -> tuple[dict[str, ast.ClassDef], dict[str, StubMember]]:
    classes = _classes(_stub_module("QuantConnect/Storage/__init__.pyi"))
    assert "ObjectStore" in classes, "the stubs lost QuantConnect.Storage.ObjectStore"
    return classes, _members(classes["ObjectStore"])


@pytest.fixture
def facade() -> LeanObjectStore:
    return LeanObjectStore(ObjectStore(f"memory://lean-stubs-{uuid.uuid4().hex}"))


def test_every_lean_object_store_member_exists_with_lean_s_signature(store_stubs, facade):
    classes, members = store_stubs
    problems: list[str] = []
    checked = set()
    for name, member in members.items():
        if name in STORE_LEFT_OUT:
            continue
        checked.add(name)
        attribute = inspect.getattr_static(LeanObjectStore, name, None)
        if attribute is None:
            problems.append(f"{name}: missing")
            continue
        if member.is_property:
            if not isinstance(attribute, property):
                problems.append(f"{name}: a property in LEAN, a method here")
                continue
            generic = member.returns.rsplit(".", 1)[-1]
            calls = _call_overloads(classes, generic) if generic.startswith("_") else []
            if calls:  # a generic method (read_json[T](...)): compare the call
                for lean, returns in calls:
                    call = getattr(facade, name)
                    problems += _conformance(name, lean, call, complete=True)
                    ours = inspect.signature(call).return_annotation
                    if STORE_RETURNS.get(returns, returns) != ours:
                        problems.append(f"{name}(): returns {ours}, LEAN {returns}")
            else:
                ours = inspect.signature(attribute.fget).return_annotation
                if STORE_RETURNS.get(member.returns) != ours:
                    problems.append(f"{name}: is {ours}, LEAN {member.returns}")
            continue
        if isinstance(attribute, property):
            problems.append(f"{name}: a method in LEAN, a property here")
            continue
        for lean, returns in member.overloads:
            problems += _conformance(name, lean, attribute, complete=True)
            ours = inspect.signature(attribute).return_annotation
            if STORE_RETURNS.get(returns) != ours:
                problems.append(f"{name}(): returns {ours}, LEAN {returns}")
    assert not problems, "\n".join(problems)
    # The members ported code uses most: a stub change that dropped them is a failure too.
    assert {"keys", "read_bytes", "save_bytes", "clear", "get_file_path", "read_json"} <= checked
    init = members["__init__"].overloads
    assert [[n for n, _ in params] for params, _ in init] == [["store"]]
    assert _conformance("__init__", init[0][0], LeanObjectStore.__init__, complete=True) == []


def test_facade_behaves_as_lean_s(facade: LeanObjectStore) -> None:
    assert facade.save("a.txt", "alpha") is True
    assert facade.save_bytes("b.bin", b"\x00\x01") is True
    assert facade.save_json("c.json", {"x": 1}) is True
    assert facade.save_json[dict]("d.json", [1, 2], settings={"indent": 1}) is True
    assert facade.save_string("e.txt", "é", "latin-1") is True
    assert facade.keys == ["a.txt", "b.bin", "c.json", "d.json", "e.txt"]  # a property
    assert facade.read_json[dict]("c.json") == {"x": 1} == facade.read_json("c.json")
    assert facade.read_string("e.txt", "latin-1") == "é" and facade.read("a.txt") == "alpha"
    pairs = list(facade)
    assert all(isinstance(pair, KeyValuePair) for pair in pairs)
    assert {pair.key: pair.value for pair in pairs}["b.bin"] == b"\x00\x01"
    assert [pair.key for pair in facade.get_enumerator()] == facade.keys
    assert facade.save_xml("f.xml", "<a><b/></a>") is True
    assert facade.read_xml("f.xml").find("b") is not None
    assert facade.delete("a.txt") is True and not facade.contains_key("a.txt")
    # save(path): what a library wrote to get_file_path's file becomes the object.
    Path(facade.get_file_path("lib/w.bin")).write_bytes(b"weights")
    assert facade.save("lib/w.bin") is True
    assert facade.store.read_bytes("lib/w.bin") == b"weights"
    assert facade.max_files == facade.store.max_files and facade.max_size > 0


# -- Algorithm ---------------------------------------------------------------------------------

#: QCAlgorithm members alphazoo's Algorithm shares, and the overloads it claims, named by the
#: first parameter names (``None``: every overload). The rest (history by date range or
#: timedelta, set_holdings with PortfolioTarget lists...) are not offered here.
ALGORITHM_CLAIMS: dict[str, tuple[str, ...] | None] = {
    "train": None,
    "set_holdings": ("symbol", "percentage"),
    "liquidate": ("symbol", "asynchronous"),
    "history": ("symbols", "periods"),
    "date_rules": None,
    "time_rules": None,
    "portfolio": None,
    "object_store": None,
}


def test_algorithm_members_follow_lean_s_qcalgorithm() -> None:
    classes = _classes(_stub_module("QuantConnect/Algorithm/__init__.pyi"))
    members = _members(classes["QCAlgorithm"])
    algorithm = Algorithm()
    problems: list[str] = []
    for name, claimed in ALGORITHM_CLAIMS.items():
        if name not in members:
            problems.append(f"{name}: gone from LEAN's QCAlgorithm")
            continue
        member = members[name]
        if not hasattr(algorithm, name):
            problems.append(f"{name}: missing")
            continue
        ours = getattr(algorithm, name)
        if member.is_property and not member.returns.rsplit(".", 1)[-1].startswith("_"):
            # A plain property (portfolio, date_rules): an attribute here, never a method.
            if inspect.ismethod(ours):
                problems.append(f"{name}: a property in LEAN, a method here")
            continue
        overloads = (_call_overloads(classes, member.returns.rsplit(".", 1)[-1])
                     if member.is_property else member.overloads)
        if not inspect.ismethod(ours):
            problems.append(f"{name}: callable in LEAN, not a method here")
            continue
        chosen = [lean for lean, _ in overloads
                  if claimed is None or tuple(n for n, _ in lean[:len(claimed)]) == claimed]
        if not chosen:
            problems.append(f"{name}: LEAN has no overload {claimed} any more")
        for lean in chosen:
            problems += _conformance(name, lean, ours, complete=False)
    assert not problems, "\n".join(problems)


def test_ported_lean_code_clear_then_read_bytes_returns_the_object(tmp_path: Path) -> None:
    # LEAN's docs: call clear() and read the key again to see a model updated elsewhere.
    class Ported(Algorithm):
        def initialize(self):
            self.set_start_date(datetime(2017, 1, 3))
            self.set_end_date(datetime(2017, 1, 10))
            self.add_equity("AAPL")
            self.object_store.save_bytes("models/live", b"model bytes")
            self.object_store.clear()
            self.seen = self.object_store.read_bytes("models/live")
            self.keys = self.object_store.keys

    store = ObjectStore(tmp_path / "store")
    result = run_backtest(Ported, load_prices("AAPL"), 100_000.0, object_store=store)
    assert result.algorithm.seen == b"model bytes"
    assert result.algorithm.keys == ["models/live"]
    assert isinstance(result.algorithm.object_store, LeanObjectStore)
    assert store.read_bytes("models/live") == b"model bytes"


def test_liquidate_takes_lean_s_overloads(tmp_path: Path) -> None:
    class Trader(Algorithm):
        def initialize(self):
            self.set_start_date(datetime(2017, 1, 3))
            self.set_end_date(datetime(2017, 1, 12))
            self.add_equity("AAPL")
            self.add_equity("GOOGL")
            self.step = 0

        def on_data(self, data):
            self.step += 1
            if self.step == 1:
                self.set_holdings("AAPL", 0.4, False, False, "in")
                self.set_holdings("GOOGL", 0.4)
            elif self.step == 2:
                self.old = self.liquidate("AAPL", "old overload")  # (symbol_to_liquidate, tag)
            elif self.step == 3:
                self.many = self.liquidate(["GOOGL"], tag="a list")

    prices = {s: load_prices(s) for s in ("AAPL", "GOOGL")}
    result = run_backtest(Trader, prices, 100_000.0, object_store=ObjectStore(tmp_path))
    algo = result.algorithm
    assert [(o.symbol, o.tag) for o in algo.old] == [("AAPL", "old overload")]
    assert [(o.symbol, o.tag) for o in algo.many] == [("GOOGL", "a list")]
    assert not algo.portfolio.invested
