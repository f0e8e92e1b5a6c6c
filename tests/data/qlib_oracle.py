"""Recompute the qlib reference numbers that tests/test_contrib_qlib_oracle.py pastes in.

Run it with an interpreter that has qlib (alphazoo does not depend on it), from the repo root:

    python -m venv /tmp/qlib-venv && /tmp/qlib-venv/bin/pip install pyqlib==0.9.7 pandas numpy
    /tmp/qlib-venv/bin/python tests/data/qlib_oracle.py            # prints JSON

It needs neither alphazoo nor torch: the bundled bars are read straight from the CSV, and each
series is built with plain pandas the way the test builds it with alphazoo (daily close-to-close
returns ``close[t] / close[t-1] - 1``, bit for bit the same floats). qlib's own functions do the
rest: ``qlib.contrib.evaluate.risk_analysis`` (both modes, N=252 and qlib's default 238) and
``qlib.contrib.eva.alpha.calc_long_short_return`` / ``calc_ic``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from qlib.contrib.eva.alpha import calc_ic, calc_long_short_return
from qlib.contrib.evaluate import risk_analysis

BARS = Path(__file__).resolve().parents[2] / "sdk" / "data" / "five_tickers_2015_2017.csv.gz"


def series() -> dict[str, pd.Series]:
    bars = pd.read_csv(BARS, parse_dates=["date"])
    close = bars.set_index(["date", "symbol"])["close"].unstack("symbol")
    # Each symbol's return over its own previous bar (AAPL's 2017-08-07 is missing: its
    # 2017-08-08 return spans two sessions, as alphazoo's features compute it).
    returns = {sym: close[sym].dropna() / close[sym].dropna().shift(1) - 1 for sym in close}
    panel = pd.DataFrame(returns)
    aapl = returns["AAPL"].dropna()
    equal = panel.mean(axis=1).dropna()          # equal weight of what trades that day
    return {"aapl": aapl, "equal_weight": equal, "aapl_excess": aapl - equal.reindex(aapl.index)}


def long_short() -> dict[str, float]:
    bars = pd.read_csv(BARS, parse_dates=["date"])
    bars = bars.rename(columns={"date": "datetime", "symbol": "instrument"})
    close = bars.set_index(["datetime", "instrument"])["close"].sort_index()
    by = close.groupby(level="instrument")
    pred = close / by.shift(5) - 1                # ret_5d
    label = by.shift(-1) / close - 1              # label_return
    ls, avg = calc_long_short_return(pred, label, quantile=0.4)
    ic = calc_ic(pred, label)[0]
    shifted_ic = calc_ic(100 + 1e-6 * pred, label)[0]
    return {"ls_count": int(ls.notna().sum()), "ls_sum": float(ls.sum()),
            "ls_sum_sq": float((ls ** 2).sum()), "avg_sum": float(avg.sum()),
            "ls_first": float(ls.dropna().iloc[0]), "ls_last": float(ls.dropna().iloc[-1]),
            "ic_mean": float(ic.mean()), "ic_count": int(ic.notna().sum()),
            "shifted_ic_mean": float(shifted_ic.mean())}


def main() -> None:
    out: dict[str, object] = {}
    for name, r in series().items():
        for mode in ("sum", "product"):
            for n in (252, 238):
                risk = risk_analysis(r, N=n, freq=None, mode=mode)["risk"]
                out[f"{name}/{mode}/{n}"] = {k: float(v) for k, v in risk.items()}
    out["long_short_ret_5d_q0.4"] = long_short()
    out["qlib_version"] = __import__("qlib").__version__
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
