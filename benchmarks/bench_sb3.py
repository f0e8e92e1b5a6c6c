"""Benchmark: alphazoo's stable-baselines3 path against SB3's own save/load and predict.

    python benchmarks/bench_sb3.py            # full run (about a minute on 2 cores)
    python benchmarks/bench_sb3.py --quick    # fewer repetitions, a smoke test
    python benchmarks/bench_sb3.py --json     # tables on stderr, JSON on stdout

Every figure is a ratio against a baseline measured in the same run, on the same machine, on
the same trained model (absolute times are printed alongside for context only):

1. save / load: ``zoo.save`` + ``zoo.load`` (local ObjectStore in a temp folder) per format
   against SB3's own ``model.save(path)`` + ``PPO.load(path)`` (its zip, the only persistence
   SB3 has) for json, safetensors and pickle, and against ``torch.onnx.export`` of the same
   deterministic-action module + ``onnxruntime.InferenceSession`` for onnx (alphazoo's save
   adds the parity check against ``model.predict``). Payload sizes next to the zip's.
2. prediction: the loaded ``PolicyOnnxPredictor`` against ``model.predict(obs,
   deterministic=True)`` on one observation (hot, back-to-back; and after 5 ms idle, as in a
   loop that acts once per bar) and on a 1,000-observation batch (medians; speed-up = native
   / onnx).

Models: PPO (``MlpPolicy``, net_arch 64x64, Discrete(3) positions) and SAC (net_arch 256x256,
SB3's default, Box positions) trained briefly on :class:`alphazoo.contrib.trading_env.TradingEnv`
over the bundled AAPL bars (``--data`` is not used). torch runs on one thread.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import git_revision, write_json
from _measure import (
    PAUSE,
    after_pause,
    benchmark_parser,
    blocked,
    environment,
    loadavg,
    med,
    ms,
    paired_save_load,
    print_header,
    ratio,
    save_load_summary,
    table,
    versions,
    x,
)

FORMATS = ("json", "safetensors", "pickle", "onnx")
BATCH_ROWS = 1_000
FULL = {"io_repeats": 7, "io_warmup": 1, "row_repeats": 2000, "row_warmup": 200,
        "cold_repeats": 200, "batch_repeats": 15, "batch_warmup": 2, "steps": 2048}
QUICK = {"io_repeats": 3, "io_warmup": 1, "row_repeats": 300, "row_warmup": 30,
         "cold_repeats": 40, "batch_repeats": 5, "batch_warmup": 1, "steps": 512}
REPORTED = ("alphazoo", "stable-baselines3", "gymnasium", "torch", "safetensors", "onnx",
            "onnxruntime", "numpy")


def train(kind: str, steps: int) -> Any:
    from stable_baselines3 import PPO, SAC

    from alphazoo.contrib.trading_env import TradingEnv

    if kind == "ppo":
        env = TradingEnv("AAPL", window=10, episode_length=250)
        return PPO("MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=4, seed=0,
                   policy_kwargs={"net_arch": [64, 64]}, device="cpu").learn(steps)
    env = TradingEnv("AAPL", window=10, episode_length=250, continuous=True)
    return SAC("MlpPolicy", env, learning_starts=100, batch_size=64, buffer_size=10_000,
               seed=0, device="cpu").learn(steps // 4)


def direct_calls(model: Any, fmt: str, path: Path) -> tuple[Any, Any]:
    """SB3's own save and load (or, for onnx, torch's export and onnxruntime's session)."""
    if fmt != "onnx":
        cls = type(model)

        def save() -> None:
            model.save(str(path))

        def load() -> Any:
            return cls.load(str(path), device="cpu")
        return save, load
    import onnxruntime
    import torch

    from alphazoo.adapters._sb3_onnx import DeterministicAction

    module = DeterministicAction(model, type(model).__name__).eval()
    example = torch.zeros((8, *model.observation_space.shape))

    def export() -> None:
        with torch.no_grad():
            torch.onnx.export(module, (example,), str(path), dynamo=False,
                              input_names=["obs"], output_names=["action"],
                              dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}})

    def session() -> Any:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return export, session


def bench_save_load(zoo: Any, name: str, model: Any, fmt: str, workdir: Path,
                    cfg: dict[str, Any]) -> dict[str, Any]:
    import warnings

    key = f"bench/{name}-{fmt}"
    path = workdir / f"{name}-{fmt}.{'onnx' if fmt == 'onnx' else 'zip'}"
    direct = direct_calls(model, fmt, path)

    def az_save() -> None:
        zoo.save(model, key, format=fmt)

    def az_load() -> Any:
        return zoo.load(key, trusted=fmt == "pickle")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation notes
        rows = paired_save_load((az_save, az_load), direct, cfg["io_repeats"],
                                cfg["io_warmup"])
    out: dict[str, Any] = save_load_summary(rows)
    manifest = zoo.inspect(key)
    out.update(model=name, format=fmt, payload_bytes=sum(f["size"] for f in manifest["files"]),
               direct_bytes=path.stat().st_size)
    out["size_ratio"] = ratio(out["payload_bytes"], out["direct_bytes"])
    return out


def bench_predict(name: str, model: Any, predictor: Any, cfg: dict[str, Any]
                  ) -> dict[str, Any]:
    space = model.observation_space
    space.seed(0)
    rows = [space.sample() for _ in range(256)]
    batch = np.stack([space.sample() for _ in range(BATCH_ROWS)])

    def native(obs: Any) -> Any:
        return model.predict(obs, deterministic=True)[0]

    fns = [native, predictor.act]
    hot = blocked(fns, [rows, rows], cfg["row_repeats"], cfg["row_warmup"])
    cold = after_pause(fns, [rows, rows], cfg["cold_repeats"], PAUSE)
    whole = blocked(fns, [[batch], [batch]], cfg["batch_repeats"], cfg["batch_warmup"])
    out = {"model": name}
    for label, (n, o) in (("row", hot), ("cold", cold), ("batch", whole)):
        out[f"native_{label}"], out[f"onnx_{label}"] = med(n), med(o)
        out[f"speedup_{label}"] = ratio(med(n), med(o))
    return out


def report(result: dict[str, Any], out: Any) -> None:
    print_header(result, "stable-baselines3", out)
    table("1. save + load (ms, median): alphazoo vs SB3's zip (onnx: vs export + session)",
          ["model", "format", "az save", "az load", "direct save", "direct load",
           "round trip", "payload / direct size"],
          [[r["model"], r["format"], ms(r["az_save"]), ms(r["az_load"]), ms(r["direct_save"]),
            ms(r["direct_load"]), x(r["roundtrip_ratio"]), x(r["size_ratio"])]
           for r in result["save_load"]], out)
    table("2. deterministic action: model.predict vs the ONNX predictor (ms, median)",
          ["model", "native row", "onnx row", "speed-up", "after 5 ms idle", "1,000 rows"],
          [[r["model"], ms(r["native_row"]), ms(r["onnx_row"]), x(r["speedup_row"]),
            x(r["speedup_cold"]), x(r["speedup_batch"])] for r in result["predict"]], out)
    print(f"\n{result['seconds']:.0f} s in all", file=out)


def main(argv: list[str] | None = None) -> int:
    args = benchmark_parser(__doc__).parse_args(argv)
    out = sys.stderr if args.json == "-" else sys.stdout
    cfg = QUICK if args.quick else FULL
    started = time.perf_counter()
    missing = [m for m in ("stable_baselines3", "gymnasium", "torch", "safetensors",
                           "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"bench_sb3: install alphazoo[sb3,safetensors,onnx] first (missing: {missing})")
    import torch

    import alphazoo

    torch.set_num_threads(1)
    result: dict[str, Any] = {
        "quick": args.quick, "config": cfg,
        "environment": environment(versions(*REPORTED), git_revision()),
        "save_load": [], "predict": [],
    }
    with tempfile.TemporaryDirectory(prefix="alphazoo-bench-") as tmp:
        workdir = Path(tmp)
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(workdir / "store"))
        for name in ("ppo", "sac"):
            print(f"  training {name}...", file=sys.stderr, flush=True)
            model = train(name, cfg["steps"])
            for fmt in FORMATS:
                print(f"  measuring save/load {name} {fmt}...", file=sys.stderr, flush=True)
                result["save_load"].append(bench_save_load(zoo, name, model, fmt, workdir, cfg))
            print(f"  measuring predictions {name}...", file=sys.stderr, flush=True)
            predictor = zoo.load(f"bench/{name}-onnx")
            result["predict"].append(bench_predict(name, model, predictor, cfg))
    result["seconds"] = time.perf_counter() - started
    result["environment"]["loadavg_end"] = loadavg()
    report(result, out)
    if args.json:
        write_json(result, args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
