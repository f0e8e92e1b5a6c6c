"""``alstm``: qlib's ALSTM, a recurrent net with temporal attention over windows of daily
features.

The network (:class:`ALSTMNet`) reads windows ``(batch, step_len, d_feat)``, oldest row first:

1. each step's features go through ``Linear(d_feat, hidden) + Tanh``;
2. a recurrent layer -- an LSTM by default, a GRU with ``rnn_type="GRU"`` -- (``num_layers``
   layers, ``hidden`` wide) runs over the steps;
3. temporal attention scores every step's LSTM output with ``Linear(hidden, hidden // 2)``,
   Dropout, Tanh and ``Linear(hidden // 2, 1)``, and a softmax over time turns the scores into
   weights that sum to 1;
4. ``Linear(2 * hidden, 1)`` maps ``[last step's output, attention-weighted sum]`` to the score.

:class:`ALSTM` trains it qlib's way: Adam on the mean squared error of the label, gradients
clipped at 3, early stopping on the dataset's ``valid`` segment (without one, on the last
``valid_fraction`` of the training windows, which are in date order: no look-ahead), and the
best epoch's weights restored. Inputs are standardised with the training windows' per-feature
mean and standard deviation; they are kept in :attr:`ALSTM.state`, so a model loaded from any
format (ONNX included) scales its inputs the same way::

    model = ALSTM(d_feat=10, n_epochs=30)           # the LEAN feature set has 10 columns
    model.fit(dataset)                              # windows of step_len=20 rows
    scores = model.predict(dataset, "test")
    zoo.save(model, "models/alstm", format="onnx")

**qlib's ALSTM is a GRU.** qlib's ``ALSTMModel`` takes ``rnn_type="GRU"`` by default and its zoo
classes (``pytorch_alstm.ALSTM``, ``pytorch_alstm_ts.ALSTM``) never pass another, so the ALSTM
of qlib's benchmarks runs a GRU: 52,609 parameters at ``d_feat=6, hidden_size=64,
num_layers=2``, against 69,249 for the LSTM (both checked against qlib 0.9.7's own class, and
the scores equal on shared weights). alphazoo keeps the LSTM the model's name describes, and
every bundle saved before ``rnn_type`` holds; ``rnn_type="GRU"`` or
``ALSTM.from_preset("qlib", d_feat=...)`` (``zoo.build("alstm", preset="qlib", ...)``) gives
qlib's network and training defaults (qlib's loop itself also skips a last incomplete batch;
alphazoo's trains on it).

This module imports torch: it is loaded only when an ``alstm`` model is built or loaded.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from alphazoo.adapters._torch_models import seeded

from .model import Model, fit_scaling, hold_out_tail, scale

__all__ = ["ALSTM", "ALSTMNet", "RNN_TYPES", "torch_threads"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op thread count at ``count`` (None: unchanged).

    The count is process-wide; it is restored after. Small recurrent nets gain nothing from a
    second thread, and on a busy 2-core machine a second thread made an LSTM step 7x slower
    (measured: 66 ms vs 490 ms for a 256-window batch), so the zoo's torch models use one.
    """
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(before)


RNN_TYPES = ("LSTM", "GRU")


class ALSTMNet(nn.Module):
    """LSTM (or GRU) with temporal attention over ``(batch, steps, d_feat)``; one score per
    window. ``rnn_type="GRU"`` is qlib's ``ALSTMModel`` default; the layers match it one for
    one (``input_layer`` is qlib's ``net.fc_in``, ``attention`` its ``att_net``,
    ``output_layer`` its ``fc_out``)."""

    def __init__(self, d_feat: int = 6, hidden_size: int = 64, num_layers: int = 2,
                 dropout: float = 0.0, rnn_type: str = "LSTM") -> None:
        super().__init__()
        if rnn_type not in RNN_TYPES:
            raise ValueError(f"rnn_type must be 'LSTM' or 'GRU', got {rnn_type!r}")
        self.d_feat, self.hidden_size = int(d_feat), int(hidden_size)
        self.input_layer = nn.Sequential(nn.Linear(self.d_feat, self.hidden_size), nn.Tanh())
        # torch applies recurrent dropout between layers only, and warns when there is one.
        rnn = nn.LSTM if rnn_type == "LSTM" else nn.GRU
        self.rnn = rnn(self.hidden_size, self.hidden_size, int(num_layers),
                       batch_first=True, dropout=float(dropout) if num_layers > 1 else 0.0)
        self.attention = nn.Sequential(
            nn.Linear(self.hidden_size, self.hidden_size // 2),
            nn.Dropout(float(dropout)),
            nn.Tanh(),
            nn.Linear(self.hidden_size // 2, 1, bias=False),
        )
        self.output_layer = nn.Linear(2 * self.hidden_size, 1)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights of each step, ``(batch, steps)``, summing to 1 per window."""
        return self._encode(x)[1]

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.rnn(self.input_layer(x))                 # (batch, steps, hidden)
        weights = torch.softmax(self.attention(out).squeeze(-1), dim=1)
        return out, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, weights = self._encode(x)
        context = (out * weights.unsqueeze(-1)).sum(dim=1)     # (batch, hidden)
        return self.output_layer(torch.cat([out[:, -1], context], dim=1)).squeeze(-1)

    def example_input(self, rows: int = 8, steps: int = 20) -> torch.Tensor:
        """Random windows of the input shape (ONNX export when no sample rows are known)."""
        return torch.randn(rows, steps, self.d_feat)


class ALSTM(Model):
    """qlib's ALSTM: LSTM (or qlib's GRU) + temporal attention, trained with early stopping.

    Defaults, and why they are not qlib's (``ALSTM.from_preset("qlib", d_feat=...)`` gives
    qlib's: GRU, 200 epochs, batch 2000, patience 20; as in qlib 0.9.7's
    ``pytorch_alstm.ALSTM``):

    * ``rnn_type="LSTM"``: the network the name (attentive LSTM) describes, and the one
      every alphazoo bundle saved before ``rnn_type`` existed holds (a bundle without it loads
      as an LSTM).
    * ``n_epochs=50``, ``batch_size=256``, ``early_stop=10``: sized for daily bars of a few
      symbols (hundreds to a few thousand windows) retrained weekly on a CPU. At batch 2000
      such a set is one or two updates per epoch -- and qlib's loop skips the last incomplete
      batch, so under 2000 windows it would not train at all; alphazoo trains on every batch.
      With several updates per epoch, 50 epochs and a patience of 10 keep each of the demo's
    52 weekly retrains short (the whole demo, three models, runs in about a minute).

    Parameters
    ----------
    d_feat:
        Features per time step. Must equal the data's last dimension (10 for the LEAN feature
        set of :mod:`alphazoo.contrib.features`); a mismatch is an error, not adapted to.
    hidden_size, num_layers, dropout:
        The network's width, recurrent depth and dropout (between recurrent layers and in
        attention).
    rnn_type:
        ``"LSTM"`` (default) or ``"GRU"`` (qlib's).
    n_epochs:
        At most this many passes over the training windows.
    lr, batch_size:
        Adam's learning rate and the mini-batch size.
    early_stop:
        Stop after this many epochs without a lower validation loss (0 = train all epochs);
        the best epoch's weights are restored either way.
    loss:
        ``"mse"`` (qlib's only loss).
    step_len:
        Rows per window when fitting on or predicting for a Dataset.
    valid_fraction:
        Share of the training windows (the latest ones) held out for early stopping when no
        validation rows are given.
    seed:
        Seeds the initial weights, shuffling and dropout: the same data and seed give the same
        model. None draws from torch's global generator.
    num_threads:
        torch's intra-op threads while fitting and predicting (None: leave torch's setting).
    """

    name = "alstm"
    library = "torch"
    sequential = True
    #: qlib 0.9.7's ``pytorch_alstm.ALSTM`` defaults for what alphazoo sets differently
    #: (qlib's ``seed`` is None; alphazoo keeps its seed so a fit is reproducible).
    PRESETS = {"qlib": {"rnn_type": "GRU", "n_epochs": 200, "batch_size": 2000,
                        "early_stop": 20, "lr": 1e-3, "hidden_size": 64, "num_layers": 2,
                        "dropout": 0.0}}

    def __init__(self, d_feat: int = 6, hidden_size: int = 64, num_layers: int = 2,
                 dropout: float = 0.0, n_epochs: int = 50, lr: float = 1e-3,
                 batch_size: int = 256, early_stop: int = 10, loss: str = "mse",
                 step_len: int = 20, valid_fraction: float = 0.2, seed: int | None = 0,
                 num_threads: int | None = 1, rnn_type: str = "LSTM") -> None:
        if rnn_type not in RNN_TYPES:
            raise ValueError(f"rnn_type must be 'LSTM' or 'GRU' (qlib's), got {rnn_type!r}")
        if loss != "mse":
            raise ValueError(f"loss must be 'mse' (qlib's ALSTM has no other), got {loss!r}")
        for label, value in (("d_feat", d_feat), ("hidden_size", hidden_size),
                             ("num_layers", num_layers), ("n_epochs", n_epochs),
                             ("batch_size", batch_size), ("step_len", step_len)):
            if int(value) < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if hidden_size < 2:
            raise ValueError(f"hidden_size must be at least 2 (attention is half as wide), "
                             f"got {hidden_size}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not 0 <= valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
        super().__init__(d_feat=int(d_feat), hidden_size=int(hidden_size),
                         num_layers=int(num_layers), dropout=float(dropout),
                         n_epochs=int(n_epochs), lr=float(lr), batch_size=int(batch_size),
                         early_stop=int(early_stop), loss=loss, step_len=int(step_len),
                         valid_fraction=float(valid_fraction), seed=seed,
                         num_threads=num_threads, rnn_type=rnn_type)

    @classmethod
    def upgrade_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        # Bundles saved before rnn_type existed hold an LSTM: say so, whatever the default.
        return {"rnn_type": "LSTM", **params}

    # -- results of training -------------------------------------------------------------------
    @property
    def history(self) -> list[dict[str, Any]]:
        """One entry per epoch: ``epoch``, ``train_loss`` and ``valid_loss`` (None without
        validation rows)."""
        return list(self.state.get("history") or [])

    @property
    def best_epoch(self) -> int | None:
        """The epoch (from 1) whose weights the model kept."""
        return self.state.get("best_epoch")

    def build_net(self) -> ALSTMNet:
        """A fresh, untrained network of this model's shape (the loader's ``builder=``)."""
        p = self.params
        with seeded(p["seed"]):
            return ALSTMNet(p["d_feat"], p["hidden_size"], p["num_layers"], p["dropout"],
                            p.get("rnn_type", "LSTM"))

    # -- Model hooks ---------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray | None, X_valid: np.ndarray | None,
             y_valid: np.ndarray | None, **fit_params: Any) -> None:
        if fit_params:
            raise TypeError(f"ALSTM.fit takes no keyword arguments {sorted(fit_params)}")
        if y is None:
            raise ValueError("alstm learns a label: pass y or a dataset with labels")
        if not np.isfinite(y).all():
            raise ValueError("y has NaN or infinite values; drop those rows first")
        self._check_width(X)
        p = self.params
        X, y, X_valid, y_valid = hold_out_tail(X, y, X_valid, y_valid, p["valid_fraction"])

        state: dict[str, Any] = fit_scaling(X)
        previous_state, self.state = self.state, state
        try:
            net, history, best = self._train(self._tensor(X), torch.as_tensor(y),
                                             None if X_valid is None else self._tensor(X_valid),
                                             None if y_valid is None else torch.as_tensor(y_valid))
        except BaseException:
            self.state = previous_state  # a failed fit leaves the previous model intact
            raise
        self.estimator = net
        self.state = {**state, "history": history, "best_epoch": best,
                      "best_valid_loss": history[best - 1]["valid_loss"]}

    def _train(self, X: torch.Tensor, y: torch.Tensor, X_valid: torch.Tensor | None,
               y_valid: torch.Tensor | None) -> tuple[ALSTMNet, list[dict[str, Any]], int]:
        p = self.params
        net = self.build_net()
        optimizer = torch.optim.Adam(net.parameters(), lr=p["lr"])
        generator = torch.Generator().manual_seed(0 if p["seed"] is None else p["seed"])
        history: list[dict[str, Any]] = []
        best_loss, best_epoch, best_state = float("inf"), 0, copy.deepcopy(net.state_dict())
        # Dropout draws from the global generator: seeded() forks it for the fit.
        with seeded(p["seed"]), torch_threads(p["num_threads"]):
            for epoch in range(1, p["n_epochs"] + 1):
                net.train()
                order = torch.randperm(len(X), generator=generator)
                total = 0.0
                for index in torch.split(order, p["batch_size"]):
                    optimizer.zero_grad()
                    loss = torch.mean((net(X[index]) - y[index]) ** 2)
                    loss.backward()
                    nn.utils.clip_grad_value_(net.parameters(), 3.0)
                    optimizer.step()
                    total += loss.item() * len(index)
                # The mean of the epoch's batch losses: a second pass over the training
                # windows would cost a third of the epoch again.
                train_loss = total / len(X)
                valid_loss = (None if X_valid is None or y_valid is None
                              else self._loss(net, X_valid, y_valid))
                history.append({"epoch": epoch, "train_loss": train_loss,
                                "valid_loss": valid_loss})
                watched = train_loss if valid_loss is None else valid_loss
                log.debug("alstm epoch %d: train loss %.6g, valid loss %s", epoch, train_loss,
                          "-" if valid_loss is None else f"{valid_loss:.6g}")
                if watched < best_loss:
                    best_loss, best_epoch = watched, epoch
                    best_state = copy.deepcopy(net.state_dict())
                elif p["early_stop"] and epoch - best_epoch >= p["early_stop"]:
                    break
        if best_epoch == 0:
            # Every loss was inf or NaN: the untrained weights must not pass for a fit.
            raise ValueError(
                "alstm training diverged: no epoch had a finite loss (labels far from unit "
                f"scale? |y| reaches {float(y.abs().max()):.3g}); rescale the labels or lower lr"
            )
        net.load_state_dict(best_state)
        return net.eval(), history, best_epoch

    def _loss(self, net: ALSTMNet, X: torch.Tensor, y: torch.Tensor) -> float:
        net.eval()
        with torch.no_grad():
            return float(torch.mean((self._forward(net, X) - y) ** 2))

    def _forward(self, net: nn.Module, X: torch.Tensor) -> torch.Tensor:
        # Batches bound the LSTM's memory on long prediction sets; results do not depend on it.
        size = max(self.params["batch_size"], 1024)
        return torch.cat([net(part) for part in torch.split(X, size)]) if len(X) else X[:, 0, 0]

    def _tensor(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self._transform(X), dtype=np.float32))

    def _transform(self, X: np.ndarray) -> np.ndarray:
        self._check_width(X)
        return scale(X, self.state) if "mean" in self.state else X

    def _predict_native(self, X: np.ndarray) -> np.ndarray:
        self.estimator.eval()
        with torch.no_grad(), torch_threads(self.params["num_threads"]):
            return self._forward(self.estimator, torch.from_numpy(X)).numpy()

    def adapter_save_options(self, format: str) -> dict[str, Any]:
        # torch's TorchScript exporter writes this LSTM in ~0.1 s against ~4 s for dynamo (see
        # benchmarks/bench_export.py); a weekly retrain exports every version. Parity-checked.
        return {"exporter": "torchscript"} if format == "onnx" else {}

    def adapter_load_options(self, format: str) -> dict[str, Any]:
        # The torch adapter stores weights, never code, for json and pt: it needs the net.
        return {"builder": self.build_net} if format in ("json", "pt") else {}

    def _check_width(self, X: np.ndarray) -> None:
        d_feat = self.params["d_feat"]
        if X.ndim != 3 or X.shape[-1] != d_feat:
            width = X.shape[-1] if X.ndim else "?"
            raise ValueError(
                f"alstm was built with d_feat={d_feat} but the data has {width} features per "
                f"step (X of shape {X.shape}); build it with d_feat={width}, e.g. "
                f"zoo.build('alstm', d_feat={width}) (the LEAN feature set has 10)"
            )
