"""alphazoo next to MLflow's flavors and BentoML's model store: the same models, one run.

For each model and format: save + load round trips through alphazoo (a local store), MLflow's
flavor (``save_model`` into a folder, with explicit ``pip_requirements`` so it does not spend
seconds inferring them; its default, inferring save is timed once apart) and BentoML's model
store (in a temporary ``BENTOML_HOME``); then the fresh-process "import + load + first
prediction" a live trading process pays at start, the hot single-row prediction of what each
load returns, and a flipped-byte check (one byte changed at evenly spaced offsets of the
stored payload: refused, or loaded anyway). Medians and ratios, alphazoo / peer.

The forest rows also time "mlflow + the same guarantees": MLflow's own ``save_model`` and
``load_model``, with what alphazoo does around a payload added in this process around those
calls: after the save, the SHA-256 of every file MLflow wrote, recorded in a file of the
model folder, and an fsync of each file, of that record and of the folders; before the load,
every file checked against the record. It is what MLflow would cost with alphazoo's integrity
and durability guarantees, so the two can be compared like for like.

MLflow and BentoML are installed only for this script, in a side venv (see README.md, "Peers");
a peer that is not importable is left out with a note. Data: the NVDA features of the other
benchmarks when ``--data`` exists, else seeded synthetic rows of the same shape.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import git_revision, write_json
from _measure import (
    blocked,
    environment,
    load_bars,
    make_features,
    med,
    print_header,
    ratio,
    table,
    time_once,
    versions,
)

FLIPS = 16  # offsets flipped per stored payload (8 with --quick)
ROWS = 3000


@dataclass
class Side:
    """One system's way to store a model in one format."""

    system: str
    label: str  # the format as that system names it
    save: Callable[[int], Any]  # iteration -> handle
    load: Callable[[Any], Any]
    payload: Callable[[Any], Path]  # the stored file a flipped byte goes into
    fresh: Callable[[Any], str] | None = None  # handle -> code that loads it in a new process
    trusted: bool = False
    hot: bool = True  # False: the same loaded model as another side, not predicted again
    parts: dict[str, list[float]] | None = None  # seconds per timed piece of save/load


@dataclass
class Row:
    model: str
    fmt: str
    sides: list[Side] = field(default_factory=list)


def _data(args: Any) -> tuple[np.ndarray, np.ndarray, str]:
    if args.data.is_file():
        _, close = load_bars(args.data)
        X, y = make_features(close)
        return X, y, f"NVDA features from {args.data.name} ({len(X):,} rows)"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, 6))
    return X, (X[:, 0] + rng.normal(size=ROWS) > 0).astype(np.int64), (
        f"synthetic seeded rows ({ROWS:,} x 6; {args.data} not found)")


def _models(X: np.ndarray, y: np.ndarray, zoo: Any, wanted: list[str]) -> dict[str, Any]:
    models: dict[str, Any] = {}
    if "sklearn" in wanted:
        from sklearn.ensemble import RandomForestClassifier

        models["forest"] = RandomForestClassifier(n_estimators=100, random_state=0,
                                                  n_jobs=1).fit(X, y)
    if "xgboost" in wanted:
        import xgboost

        models["xgboost"] = xgboost.XGBClassifier(n_estimators=300, max_depth=6, n_jobs=1,
                                                  random_state=0).fit(X, y)
    if "torch" in wanted:
        mlp = zoo.build("torch_mlp", in_features=X.shape[1], out_features=2, hidden=(256, 256))
        models["torch"] = zoo.train(mlp, X.astype(np.float32), y, epochs=2)
    return models


# -- the three systems ---------------------------------------------------------------------------
def _alphazoo_sides(zoo: Any, model: Any, name: str, fmt: str) -> Side:
    trusted = fmt == "pickle"
    folder = Path(zoo.store.folder)

    def save(i: int) -> str:
        key = f"{name}/{fmt}/{i}"
        zoo.save(model, key, format=fmt)
        return key

    def fresh(key: str) -> str:
        return (f"import alphazoo\nm = alphazoo.Zoo(store={str(folder)!r}).load({key!r}, "
                f"trusted={trusted})\n")

    return Side("alphazoo", fmt, save, lambda key: zoo.load(key, trusted=trusted),
                lambda key: folder / key, fresh, trusted)


def _mlflow_side(root: Path, model: Any, name: str, fmt: str, X: np.ndarray,
                 skops_types: list[str]) -> Side | None:
    import mlflow.pytorch
    import mlflow.sklearn
    import mlflow.xgboost

    requirements = {"forest": ["scikit-learn", "skops"], "xgboost": ["xgboost"],
                    "torch": ["torch"]}[name]
    flavor: Any
    if name == "forest":
        flavor, files = mlflow.sklearn, {"skops": "model.skops", "pickle": "model.pkl"}
        options = {"serialization_format": fmt, "skops_trusted_types": skops_types}
    elif name == "xgboost":
        flavor, files = mlflow.xgboost, {"json": "model.json", "ubj": "model.ubj"}
        options = {"model_format": fmt}
    else:
        flavor, files = mlflow.pytorch, {"pickle": "data/model.pth", "pt2": "data/model.pt2"}
        options = {"serialization_format": fmt}
        if fmt == "pt2":
            options["input_example"] = X[:2].astype(np.float32)
    if fmt not in files:
        return None

    def save(i: int) -> Path:
        path = root / f"{name}-{fmt}-{i}"
        flavor.save_model(model, str(path), pip_requirements=requirements, **options)
        return path

    def payload(path: Path) -> Path:
        found = path / files[fmt]
        return found if found.exists() else max(
            (p for p in path.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)

    module = flavor.__name__

    def fresh(path: Path) -> str:
        return f"import {module}\nm = {module}.load_model({str(path)!r})\n"

    return Side("mlflow", fmt, save, lambda path: flavor.load_model(str(path)), payload, fresh)


GUARDED = "mlflow + the same guarantees"
RECORD = "sha256-record.json"  # written by the guarded side into each MLflow model folder


def verify_record(folder: str) -> None:
    """Raise ``ValueError`` unless every file listed in ``folder``'s record has its SHA-256.

    Also run in the fresh and flipped-byte child processes (its source is sent along), so it
    imports what it uses.
    """
    import hashlib
    import json
    import os

    with open(os.path.join(folder, RECORD)) as handle:
        record = json.load(handle)
    for name, digest in record.items():
        with open(os.path.join(folder, name), "rb") as handle:
            if hashlib.file_digest(handle, "sha256").hexdigest() != digest:
                raise ValueError(f"{name}: SHA-256 differs from the record; not loaded")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _with_guarantees(side: Side | None) -> Side:
    """MLflow's side with alphazoo's integrity and durability added around MLflow's calls.

    Save: MLflow's ``save_model``, then the SHA-256 of every file it wrote (model file,
    ``MLmodel``, environment files) into a record, an fsync of each file and of the record,
    then of the model folder(s) and the folder that holds them (the model folder is new).
    Load: every file checked against the record, then MLflow's ``load_model``. MLflow reads
    the files again after the check, which alphazoo does not need (it unpickles the bytes it
    verified); the check itself reads and hashes each file once, as alphazoo's load does.
    """
    assert side is not None

    parts: dict[str, list[float]] = {
        "SHA-256 of the files (save)": [], "fsync of the model file": [],
        "fsync of MLmodel, environment files, record": [], "fsync of the folders": [],
        "SHA-256 check of the files (load)": []}

    def timed(part: str, start: float) -> None:
        parts[part].append(time.perf_counter() - start)

    def save(i: int) -> Path:
        folder: Path = side.save(i)
        model_file = side.payload(folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        record, hashing, syncing = {}, 0.0, {True: 0.0, False: 0.0}
        for path in files:
            with open(path, "rb") as handle:
                start = time.perf_counter()
                record[path.relative_to(folder).as_posix()] = hashlib.file_digest(
                    handle, "sha256").hexdigest()
                middle = time.perf_counter()
                os.fsync(handle.fileno())
                hashing += middle - start
                syncing[path == model_file] += time.perf_counter() - middle
        start = time.perf_counter()
        with open(folder / RECORD, "w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        syncing[False] += time.perf_counter() - start
        parts["SHA-256 of the files (save)"].append(hashing)
        parts["fsync of the model file"].append(syncing[True])
        parts["fsync of MLmodel, environment files, record"].append(syncing[False])
        start = time.perf_counter()
        for directory in sorted({p.parent for p in files} | {folder, folder.parent}):
            _fsync(directory)
        timed("fsync of the folders", start)
        return folder

    def load(folder: Path) -> Any:
        start = time.perf_counter()
        verify_record(str(folder))
        timed("SHA-256 check of the files (load)", start)
        return side.load(folder)

    check = f"RECORD = {RECORD!r}\n{inspect.getsource(verify_record)}"

    def fresh(folder: Path) -> str:
        assert side.fresh is not None
        return f"{check}verify_record({str(folder)!r})\n{side.fresh(folder)}"

    return Side(GUARDED, side.label, save, load, side.payload, fresh, side.trusted, hot=False,
                parts=parts)


def _bentoml_side(home: Path, model: Any, name: str) -> Side:
    import bentoml

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bentoml.pytorch is deprecated since 1.4
        flavor: Any = {"forest": bentoml.sklearn, "xgboost": bentoml.xgboost,
                       "torch": getattr(bentoml, "pytorch", None)}[name]
    label = {"forest": "joblib (pickle)", "xgboost": "ubj", "torch": "torch.save (pickle)"}[name]
    extra = {"weights_only": False} if name == "torch" else {}

    def save(i: int) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return flavor.save_model(f"{name}-{i}", model).tag

    def load(tag: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return flavor.load_model(tag, **extra)

    def payload(tag: Any) -> Path:
        folder = Path(bentoml.models.get(tag).path)
        return max((p for p in folder.rglob("*") if p.is_file() and p.suffix != ".yaml"),
                   key=lambda p: p.stat().st_size)

    module = flavor.__name__.rsplit(".", 1)[-1]

    def fresh(tag: Any) -> str:
        return (f"import os\nos.environ['BENTOML_HOME'] = {str(home)!r}\nimport warnings\n"
                "warnings.simplefilter('ignore')\nimport bentoml\n"
                f"m = bentoml.{module}.load_model({str(tag)!r}"
                f"{', weights_only=False' if extra else ''})\n")

    return Side("bentoml", label, save, load, payload, fresh, name == "torch")


def _rows(models: dict[str, Any], zoo: Any, peers: dict[str, Path], X: np.ndarray) -> list[Row]:
    """Each model's formats, every system that stores that format side by side."""
    import skops.io

    skops_types: list[str] = []
    if "forest" in models:
        probe = Path(tempfile.mkdtemp()) / "probe.skops"
        skops.io.dump(models["forest"], probe)
        skops_types = skops.io.get_untrusted_types(file=probe)
    plan = {"forest": [("skops", "skops", False), ("pickle", "pickle", True)],
            "xgboost": [("json", "json", False), ("ubj", "ubj", True)],
            "torch": [("pickle", "pickle", True), ("json", "pt2", False),
                      ("pt", None, False)]}
    rows = []
    for name, model in models.items():
        for az_fmt, mlflow_fmt, with_bentoml in plan[name]:
            label = az_fmt if mlflow_fmt in (az_fmt, None) else f"{az_fmt} / MLflow {mlflow_fmt}"
            row = Row(name, label, [_alphazoo_sides(zoo, model, name, az_fmt)])
            if "mlflow" in peers and mlflow_fmt:
                side = _mlflow_side(peers["mlflow"], model, name, mlflow_fmt, X, skops_types)
                if side:
                    row.sides.append(side)
                    if name == "forest":
                        guarded = peers["mlflow"] / "guarded"
                        guarded.mkdir(exist_ok=True)
                        row.sides.append(_with_guarantees(_mlflow_side(
                            guarded, model, name, mlflow_fmt, X, skops_types)))
            if "bentoml" in peers and with_bentoml:
                row.sides.append(_bentoml_side(peers["bentoml"], model, name))
            rows.append(row)
    return rows


# -- measurements --------------------------------------------------------------------------------
def _round_trips(row: Row, repeats: int) -> dict[str, dict[str, float]]:
    """Median save, load and save+load per system, the systems taking turns every iteration."""
    times: dict[str, dict[str, list[float]]] = {
        s.system: {"save": [], "load": [], "round": []} for s in row.sides}
    for i in range(-1, repeats):  # iteration -1 warms up
        order = row.sides if i % 2 else list(reversed(row.sides))
        for side in order:
            handle: list[Any] = []
            save = time_once(lambda side=side, i=i, handle=handle: handle.append(side.save(i + 1)))
            load = time_once(lambda side=side, handle=handle: side.load(handle[0]))
            if i < 0 and side.parts:
                for samples in side.parts.values():
                    samples.clear()  # the warm-up's
            if i >= 0:
                record = times[side.system]
                record["save"].append(save)
                record["load"].append(load)
                record["round"].append(save + load)
    return {system: {k: med(v) for k, v in parts.items()} for system, parts in times.items()}


def _mlflow_default_save(model: Any, root: Path) -> float | None:
    """One ``mlflow.sklearn.save_model`` as a user calls it: requirements inferred."""
    import mlflow.sklearn
    import skops.io

    probe = root / "probe.skops"
    skops.io.dump(model, probe)
    types = skops.io.get_untrusted_types(file=probe)
    start = time.perf_counter()
    mlflow.sklearn.save_model(model, str(root / "default"), serialization_format="skops",
                              skops_trusted_types=types)
    return time.perf_counter() - start


PREDICT = {
    "forest": "import numpy as np\nm.predict_proba(np.zeros((1, 6)))\n",
    "xgboost": "import numpy as np\nm.predict_proba(np.zeros((1, 6)))\n",
    "torch": "import torch\nwith torch.no_grad():\n    m(torch.zeros(1, 6))\n",
}


def _fresh(code: str, repeats: int) -> float:
    """Median wall time of a new interpreter running ``code`` (after one untimed run)."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"fresh process failed:\n{code}\n{done.stderr[-2000:]}")
        if i:
            times.append(time.perf_counter() - start)
    return med(times)


FLIP_CHILD = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    spec = json.loads(sys.argv[1])
    namespace = {}
    exec(spec["setup"], namespace)
    path, results = spec["path"], []
    reference = None
    for offset in [None] + spec["offsets"]:
        if offset is not None:
            with open(path, "r+b") as handle:
                handle.seek(offset); byte = handle.read(1)
                handle.seek(offset); handle.write(bytes([byte[0] ^ 0x10]))
        try:
            exec(spec["load"], namespace)
            outcome = repr(namespace["out"].tolist())
        except BaseException as exc:
            outcome = None if offset is not None else repr(exc)
        finally:
            if offset is not None:
                with open(path, "r+b") as handle:
                    handle.seek(offset); handle.write(byte)
        if offset is None:
            reference = outcome
        else:
            results.append("refused" if outcome is None else
                           "same" if outcome == reference else "changed")
        print(json.dumps(results), flush=True)
""")


def _flip_check(side: Side, handle: Any, model_name: str, flips: int) -> str:
    """Flip one byte at ``flips`` evenly spaced offsets of the stored payload, one at a time,
    in a child process (a crafted byte may crash a native loader); each load is refused,
    loads with the same predictions, or loads with changed ones."""
    path = side.payload(handle)
    size = path.stat().st_size
    offsets = sorted({int(size * (k + 0.5) / flips) for k in range(flips)})
    code = side.fresh(handle) if side.fresh else ""
    predict = {"forest": "out = m.predict_proba(rows)", "xgboost": "out = m.predict_proba(rows)",
               "torch": "import torch\nwith torch.no_grad():\n    out = m(torch.as_tensor(rows))"}
    setup = ("import numpy as np\nrows = np.random.default_rng(1).normal(size=(64, 6))"
             f"{'.astype(np.float32)' if model_name == 'torch' else ''}\n")
    spec = {"setup": setup, "load": code + predict[model_name] + "\n", "path": str(path),
            "offsets": offsets}
    done = subprocess.run([sys.executable, "-c", FLIP_CHILD, json.dumps(spec)],
                          capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    results = json.loads(lines[-1]) if lines else []
    refused = results.count("refused")
    text = f"{refused}/{len(offsets)} refused"
    if results.count("changed"):
        text += f", {results.count('changed')} loaded with changed predictions"
    if done.returncode != 0:
        text += f", crashed at offset {len(results) + 1} (exit {done.returncode})"
    return text


def _hot_predict(row: Row, handles: dict[str, Any], X: np.ndarray, repeats: int,
                 name: str) -> dict[str, float]:
    import torch

    loaded = {s.system: s.load(handles[s.system]) for s in row.sides if s.hot}
    rows = [X[i:i + 1] for i in range(200)]
    if name == "torch":
        tensors = [torch.as_tensor(r, dtype=torch.float32) for r in rows]

        def call(m: Any) -> Callable[[Any], Any]:
            def run(r: Any) -> Any:
                with torch.no_grad():
                    return m(r)
            return run
        fns, args = [call(m) for m in loaded.values()], [tensors] * len(loaded)
    else:
        fns = [m.predict_proba for m in loaded.values()]
        args = [rows] * len(loaded)
    times = blocked(fns, args, repeats, warmup=50)
    return {system: med(t) for system, t in zip(loaded, times)}


# -- main ----------------------------------------------------------------------------------------
def _peers(root: Path) -> tuple[dict[str, Path], list[str]]:
    found, notes = {}, []
    home = root / "bentoml-home"
    os.environ["BENTOML_HOME"] = str(home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for name, folder in (("mlflow", root / "mlflow"), ("bentoml", home)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                __import__(name)
        except ImportError as exc:
            notes.append(f"{name} is not importable ({exc}); its columns are left out. See "
                         "benchmarks/README.md, 'Peers', for the side venv.")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        found[name] = folder
    return found, notes


def main() -> int:
    from _measure import benchmark_parser

    parser = benchmark_parser(__doc__)
    parser.add_argument("--models", nargs="+", default=["sklearn", "xgboost", "torch"],
                        choices=["sklearn", "xgboost", "torch"])
    parser.add_argument("--no-fresh", action="store_true", help="skip the fresh processes")
    parser.add_argument("--no-flip", action="store_true", help="skip the flipped-byte check")
    args = parser.parse_args()
    out = sys.stderr if args.json == "-" else sys.stdout
    repeats, fresh_repeats, hot = (3, 1, 300) if args.quick else (7, 3, 2000)
    flips = 8 if args.quick else FLIPS
    root = Path(tempfile.mkdtemp(prefix="alphazoo-peers-"))
    try:
        return _run(args, out, root, repeats, fresh_repeats, hot, flips)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(args: Any, out: Any, root: Path, repeats: int, fresh_repeats: int, hot: int,
         flips: int) -> int:
    import alphazoo

    peers, notes = _peers(root)
    X, y, source = _data(args)
    zoo = alphazoo.Zoo(store=str(root / "alphazoo"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = _models(X, y, zoo, args.models)
        rows = _rows(models, zoo, peers, X)
    result: dict[str, Any] = {"environment": environment(
        versions("alphazoo", "mlflow", "bentoml", "scikit-learn", "skops", "xgboost", "torch",
                 "numpy"), git_revision(), data=source, notes=notes), "quick": args.quick}
    print_header(result, "alphazoo vs MLflow and BentoML", out, details=f"; data: {source}")
    for note in notes:
        print(f"note: {note}", file=out)

    trips: list[list[str]] = []
    guarantees: list[list[str]] = []
    result["round_trips"] = []
    handles: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            medians = _round_trips(row, repeats)
            parts = {s.system: {k: med(v) for k, v in s.parts.items()}
                     for s in row.sides if s.parts}
            handles[row.model, row.fmt] = {s.system: s.save(10_000) for s in row.sides}
        az = medians["alphazoo"]
        for side in row.sides:
            m = medians[side.system]
            versus = "-" if side.system == "alphazoo" else f"{ratio(az['round'], m['round']):.2f}x"
            trips.append([row.model, row.fmt, side.system, side.label, f"{m['save'] * 1e3:.1f}",
                          f"{m['load'] * 1e3:.1f}", f"{m['round'] * 1e3:.1f}", versus])
        for system, pieces in parts.items():
            guarantees.extend([row.model, row.fmt, system, piece, f"{seconds * 1e3:.1f}"]
                              for piece, seconds in pieces.items())
        result["round_trips"].append({
            "model": row.model, "format": row.fmt, "medians_s": medians, "pieces_s": parts,
            "alphazoo_over": {s: ratio(az["round"], m["round"]) for s, m in medians.items()
                              if s != "alphazoo"}})
    table(f"1. save + load (ms, median of {repeats}; ratio = alphazoo round trip / this one)",
          ["model", "format", "system", "its format", "save", "load", "round trip",
           "alphazoo / it"], trips, out)
    if any(s.system == GUARDED for row in rows for s in row.sides):
        print(f"'{GUARDED}': MLflow's save_model + SHA-256 of its files recorded + fsync of "
              "files and folders; load_model after checking the files against the record "
              "(done in this process around MLflow's calls, as alphazoo does around a payload)",
              file=out)
        table(f"1b. what the guarantees added to MLflow's calls (ms, median of {repeats})",
              ["model", "format", "system", "piece", "ms"], guarantees, out)

    if "mlflow" in peers and "forest" in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds = _mlflow_default_save(models["forest"], peers["mlflow"])
        forest_az = next(r for r in result["round_trips"] if r["model"] == "forest")
        az_save = forest_az["medians_s"]["alphazoo"]["save"]
        print(f"\nMLflow's default save of the forest (skops, requirements inferred): "
              f"{seconds:.2f} s, {ratio(seconds, az_save):.0f}x alphazoo's save", file=out)
        result["mlflow_default_save_s"] = seconds

    if not args.no_fresh:
        fresh_rows = [["(none)", "-", "python -c pass", "-",
                       f"{_fresh('pass', fresh_repeats) * 1e3:.0f}"]]
        for row in rows:
            for side in row.sides:
                if side.fresh is None:
                    continue
                code = side.fresh(handles[row.model, row.fmt][side.system]) + PREDICT[row.model]
                seconds = _fresh(code, fresh_repeats)
                fresh_rows.append([row.model, row.fmt, side.system, side.label,
                                   f"{seconds * 1e3:.0f}"])
        table(f"2. fresh process: import + load + first prediction (ms, median of "
              f"{fresh_repeats})", ["model", "format", "system", "its format", "wall"],
              fresh_rows, out)
        result["fresh_ms"] = fresh_rows

    hot_rows = []
    for row in rows:
        if row.fmt not in ("skops", "ubj", "pickle"):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A forest's predict_proba takes milliseconds: fewer calls give as steady a median.
            calls = hot // 5 if row.model == "forest" else hot
            per = _hot_predict(row, handles[row.model, row.fmt], X, calls, row.model)
        for system, seconds in per.items():
            hot_rows.append([row.model, row.fmt, system, f"{seconds * 1e6:.1f}",
                             f"{ratio(per['alphazoo'], seconds):.2f}x"])
    table(f"3. hot single-row prediction of what load returns (µs, median of {hot}; "
          f"forest {hot // 5})",
          ["model", "format", "system", "per call", "alphazoo / it"], hot_rows, out)
    result["hot_us"] = hot_rows

    if not args.no_flip:
        flip_rows = []
        for row in rows:
            for side in row.sides:
                verdict = _flip_check(side, handles[row.model, row.fmt][side.system], row.model,
                                      flips)
                flip_rows.append([row.model, row.fmt, side.system, side.label, verdict])
        table(f"4. one flipped byte at {flips} offsets of the stored payload, one at a time",
              ["model", "format", "system", "its format", "loads"], flip_rows, out)
        result["flipped_byte"] = flip_rows
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
