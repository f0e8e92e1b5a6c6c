"""``policy_gradient``: a position policy on a price series, trained with REINFORCE.

A small torch MLP (:class:`PolicyNet`) maps a state -- the row's standardised features, plus
the position held when ``use_position=True`` -- to probabilities over positions: flat (0) or
long (1), and short (-1) with ``allow_short=True``. Holding ``p[t]`` over ``t -> t+1`` earns
``reward[t] = p[t] * label_return[t] - cost * |p[t] - p[t-1]|`` (episodes start flat), so the
dataset's label must be ``label_return``.

Training: one episode per instrument (its ``train`` rows in date order). Each update samples
every episode's positions, computes the discounted return-to-go (``gamma``), subtracts the mean
return (the baseline), scales by the deviation and ascends ``log pi(p[t] | state[t]) *
advantage`` plus an entropy bonus. After each epoch (``steps_per_epoch`` updates) the greedy
policy (the likeliest position) runs over the ``valid`` segment; its total reward picks the best
epoch, ``patience`` epochs without a better one stop training, and the best policy is restored::

    pg = PolicyGradient(cost=0.0005)
    pg.fit(dataset, checkpoint=zoo, checkpoint_key="rl/pg", verbose=True)
    p_long = pg.predict(dataset, "test")     # P(long) per (datetime, instrument)
    held = pg.positions(dataset, "test")     # the greedy positions
    pg.history                               # one dict per epoch: rewards, checkpoint keys

With a zoo, each improved policy is saved as ``f"{checkpoint_key}/epoch-{n:04d}"``. The torch
adapter stores the network (json, pt, pickle, onnx); it outputs the probabilities, so an ONNX
bundle answers the same. This module imports torch: it loads only when the model is used.

For stable-baselines3's algorithms (PPO, A2C, DQN, SAC) on the same positions-and-costs
reward, :class:`alphazoo.contrib.trading_env.TradingEnv` is a gymnasium environment over a
bundled price series; the sb3 adapter stores the trained policies.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from alphazoo.adapters._torch_models import mlp_layers, seeded

from .alstm import torch_threads
from .model import Model, NotFittedError, fit_scaling, is_dataset, is_onnx_predictor, scale

__all__ = ["PolicyGradient", "PolicyNet"]

log = logging.getLogger(__name__)


class PolicyNet(nn.Module):
    """An MLP from states ``(batch, in_features)`` to position probabilities ``(batch, n)``."""

    def __init__(self, in_features: int, n_actions: int, hidden_size: int = 32,
                 num_layers: int = 1) -> None:
        super().__init__()
        self.in_features = int(in_features)
        sizes = [self.in_features, *[int(hidden_size)] * int(num_layers), int(n_actions)]
        self.layers = mlp_layers(sizes, activation_name="tanh")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised log-probabilities (training uses their log-softmax)."""
        return self.layers(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.layers(x), dim=-1)

    def example_input(self, rows: int = 8) -> torch.Tensor:
        """Random states of the input shape (ONNX export when no sample rows are known)."""
        return torch.randn(rows, self.in_features)


class PolicyGradient(Model):
    """A REINFORCE-trained position policy with early stopping and checkpoints.

    Parameters
    ----------
    cost:
        Trading cost per unit of position change, as a fraction (0.0005 = 5 bp).
    allow_short:
        Positions {-1, 0, 1} instead of {0, 1}.
    use_position:
        Add the position held since the previous step to the state, so the policy can weigh
        the cost of changing it. Predictions then follow the greedy path of each instrument.
    hidden_size, num_layers:
        The MLP's width and depth.
    gamma:
        Discount of future rewards in the return-to-go (0 = each step's own reward).
    lr, entropy:
        Adam's learning rate and the weight of the entropy bonus (keeps exploring).
    n_epochs, steps_per_epoch, patience:
        At most ``n_epochs`` evaluations, ``steps_per_epoch`` policy updates apart; stop after
        ``patience`` evaluations without a better validation reward (0 = never stop early).
    valid_fraction:
        Without validation rows, the latest share of the training dates is held out for
        early stopping; with 0 the training reward itself is watched.
    n_features:
        Width of the feature rows; None learns it from the training data (it is recorded so
        a saved policy rebuilds its network).
    seed:
        Seeds the initial weights and the sampled positions: same data, same policy.
    num_threads:
        torch's intra-op threads while fitting (None: leave torch's setting).
    """

    name = "policy_gradient"
    library = "torch"

    def __init__(self, cost: float = 0.0, allow_short: bool = False, use_position: bool = False,
                 hidden_size: int = 32, num_layers: int = 1, gamma: float = 0.9,
                 lr: float = 1e-2, entropy: float = 0.01, n_epochs: int = 100,
                 steps_per_epoch: int = 8, patience: int = 10, valid_fraction: float = 0.2,
                 n_features: int | None = None, seed: int | None = 0,
                 num_threads: int | None = 1) -> None:
        for label, value, ok in (("cost", cost, cost >= 0), ("gamma", gamma, 0 <= gamma <= 1),
                                 ("valid_fraction", valid_fraction, 0 <= valid_fraction < 1)):
            if not ok:
                raise ValueError(f"{label} is out of range: {value!r} (see help(PolicyGradient))")
        for label, value in (("hidden_size", hidden_size), ("num_layers", num_layers),
                             ("n_epochs", n_epochs), ("steps_per_epoch", steps_per_epoch)):
            if int(value) < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        super().__init__(cost=float(cost), allow_short=bool(allow_short),
                         use_position=bool(use_position), hidden_size=int(hidden_size),
                         num_layers=int(num_layers), gamma=float(gamma), lr=float(lr),
                         entropy=float(entropy), n_epochs=int(n_epochs),
                         steps_per_epoch=int(steps_per_epoch), patience=int(patience),
                         valid_fraction=float(valid_fraction),
                         n_features=None if n_features is None else int(n_features),
                         seed=seed, num_threads=num_threads)
        self._fixed_width = n_features is not None

    # -- public API ----------------------------------------------------------------------------
    @property
    def actions(self) -> np.ndarray:
        """The positions the policy chooses among, in the network's output order."""
        return np.array([-1.0, 0.0, 1.0] if self.params["allow_short"] else [0.0, 1.0],
                        dtype=np.float32)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per epoch: ``epoch``, ``train_reward`` (mean sampled reward per episode),
        ``valid_reward`` (the greedy policy's total), ``improved`` and ``checkpoint``."""
        return list(self.state.get("history") or [])

    @property
    def best_epoch(self) -> int | None:
        """The epoch (from 1) whose policy the model kept."""
        return self.state.get("best_epoch")

    def build_net(self) -> PolicyNet:
        """A fresh, untrained policy of this model's shape (the loader's ``builder=``)."""
        p = self.params
        if p["n_features"] is None:
            raise NotFittedError("the policy's input width is learnt by fit(): fit it first")
        width = p["n_features"] + (1 if p["use_position"] else 0)
        with seeded(p["seed"]):
            return PolicyNet(width, len(self.actions), p["hidden_size"], p["num_layers"])

    def fit(self, data: Any, y: Any = None, *, checkpoint: Any = None,
            checkpoint_key: str = "policy_gradient/checkpoints", verbose: bool = False,
            **fit_params: Any) -> PolicyGradient:
        """Train on a Dataset with ``label_return`` labels, or on one series ``X, y``.

        ``checkpoint`` (a :class:`~alphazoo.Zoo`) saves each improved policy under
        ``f"{checkpoint_key}/epoch-{n:04d}"``; ``verbose`` logs one line per epoch at INFO
        level (logger ``alphazoo.contrib.policy_gradient``). A failed fit leaves the model as
        it was.
        """
        if fit_params:
            raise TypeError(f"PolicyGradient.fit got unexpected arguments {sorted(fit_params)}")
        if is_dataset(data):
            if y is not None:
                raise TypeError("fit(dataset) takes the labels from the dataset; pass no y")
            if data.label_name == "label_direction":
                raise ValueError(_BAD_LABEL + " (this dataset's label is label_direction)")
            if data.segments and not data.has_segment("train"):
                # Every row of a segmented dataset would include its test rows.
                raise KeyError(f"the dataset has segments {', '.join(data.segments)} but no "
                               "'train' segment to fit on")
            X, y, index = data.prepare("train" if data.segments else None)
            if y is None:
                raise ValueError("the dataset has no labels: " + _BAD_LABEL)
            train = _episodes(index)
            valid_rows = data.prepare("valid") if data.has_segment("valid") else None
            if valid_rows is not None and len(valid_rows[0]):
                X_valid, y_valid, valid_index = valid_rows
                valid = _episodes(valid_index)
            else:
                # No (or an empty) valid segment: hold the latest training dates out, rather
                # than early-stop on a reward that is 0 for every policy.
                X, y, train, X_valid, y_valid, valid = self._hold_out(X, y, index)
            feature_names = data.feature_names
        else:
            X = self._check_X(data)
            y = np.asarray(y, dtype=np.float32).reshape(-1) if y is not None else None
            if y is None or len(y) != len(X):
                raise ValueError("fit(X, y) needs one label_return per row of X")
            X, y, train, X_valid, y_valid, valid = self._hold_out(X, y, None)
            feature_names = None
        _check_returns(y)
        if len(X) == 0:
            raise ValueError("no rows to fit on (is the train segment empty?)")
        saved = (dict(self.params), self.estimator, self.state, self.sample, self.feature_names)
        # Set before training: the checkpoints saved along the way record them too.
        self.feature_names = feature_names
        try:
            self._train(X, y, train, X_valid, y_valid, valid, checkpoint, checkpoint_key,
                        verbose)
        except BaseException:
            self.params, self.estimator, self.state, self.sample, self.feature_names = saved
            raise
        return self

    def predict(self, data: Any, segment: str | None = "test") -> Any:
        """P(long) at each row, following each instrument's greedy path (a Series on the
        dataset's index, or an array for ``X``, taken as one date-ordered series)."""
        return self._greedy(data, segment, "score")

    def positions(self, data: Any, segment: str | None = "test") -> Any:
        """The greedy policy's positions (held from each row's date to the next)."""
        return self._greedy(data, segment, "position")

    # -- training ------------------------------------------------------------------------------
    def _hold_out(self, X: np.ndarray, y: np.ndarray, index: Any) -> tuple[Any, ...]:
        """Split the latest ``valid_fraction`` of the dates off for early stopping."""
        dates = np.arange(len(X)) if index is None else index.get_level_values(0).to_numpy()
        keep = np.ones(len(X), dtype=bool)
        if self.params["valid_fraction"] > 0:
            distinct = np.unique(dates)
            cut = int(len(distinct) * (1 - self.params["valid_fraction"]))
            if 0 < cut < len(distinct):
                keep = dates < distinct[cut]

        def group(mask: np.ndarray) -> list[np.ndarray]:
            return [np.arange(int(mask.sum()))] if index is None else _episodes(index[mask])

        if keep.all():
            return X, y, group(keep), None, None, None
        return X[keep], y[keep], group(keep), X[~keep], y[~keep], group(~keep)

    def _train(self, X: np.ndarray, y: np.ndarray, train: list[np.ndarray],
               X_valid: np.ndarray | None, y_valid: np.ndarray | None,
               valid: list[np.ndarray] | None, zoo: Any, key: str, verbose: bool) -> None:
        p = self.params
        if self._fixed_width and p["n_features"] != X.shape[1]:
            raise ValueError(f"the policy was built for n_features={p['n_features']} but the "
                             f"data has {X.shape[1]} features")
        self.params = {**p, "n_features": int(X.shape[1])}
        self.state = {**fit_scaling(X), "history": []}
        net = self.build_net()
        self.estimator = net  # checkpoints save the policy being trained
        self.sample = self._inputs(self._transform(X[:16]))[:, 0]
        states = torch.from_numpy(self._inputs(self._transform(X)))
        rewards_of = _padded(train, y)
        if valid is None or X_valid is None or y_valid is None:  # watch the training reward
            X_valid, y_valid, valid = X, y, train
        valid_states = self._inputs(self._transform(X_valid))
        valid_returns = _padded(valid, y_valid)

        optimizer = torch.optim.Adam(net.parameters(), lr=p["lr"])
        rng = np.random.default_rng(0 if p["seed"] is None else p["seed"])
        history: list[dict[str, Any]] = self.state["history"]
        best_reward, best_epoch = -np.inf, 0
        best_state = copy.deepcopy(net.state_dict())
        level = logging.INFO if verbose else logging.DEBUG
        with torch_threads(p["num_threads"]):
            for epoch in range(1, p["n_epochs"] + 1):
                net.train()
                sampled = [self._update(net, optimizer, states, rewards_of, rng)
                           for _ in range(p["steps_per_epoch"])]
                net.eval()
                with torch.no_grad():
                    probs = net(torch.from_numpy(valid_states)).numpy()
                _, held = self._rollout(probs, valid_returns[0], None)
                reward = float(self._rewards(held, *valid_returns[1:]).sum())
                entry: dict[str, Any] = {"epoch": epoch, "train_reward": float(np.mean(sampled)),
                                         "valid_reward": reward, "improved": reward > best_reward,
                                         "checkpoint": None}
                history.append(entry)
                if entry["improved"]:
                    best_reward, best_epoch = reward, epoch
                    best_state = copy.deepcopy(net.state_dict())
                    self.state["best_epoch"], self.state["best_reward"] = epoch, reward
                    if zoo is not None:
                        entry["checkpoint"] = f"{key}/epoch-{epoch:04d}"
                        zoo.save(self, entry["checkpoint"])
                log.log(level, "policy_gradient epoch %d/%d: train reward %.5f, valid reward "
                        "%.5f%s", epoch, p["n_epochs"], entry["train_reward"], reward,
                        " (best)" if entry["improved"] else "")
                if p["patience"] and epoch - best_epoch >= p["patience"]:
                    break
        net.load_state_dict(best_state)
        net.eval()

    def _update(self, net: PolicyNet, optimizer: torch.optim.Optimizer, states: torch.Tensor,
                episodes: tuple[np.ndarray, np.ndarray, np.ndarray],
                rng: np.random.Generator) -> float:
        """One REINFORCE step over all episodes; returns the mean sampled episode reward."""
        rows, returns, mask = episodes
        log_probs = torch.log_softmax(net.logits(states), dim=-1)  # (rows, slots, actions)
        choice, held = self._rollout(log_probs.detach().exp().numpy(), rows, rng)
        rewards = self._rewards(held, returns, mask)
        to_go = np.zeros_like(rewards)
        running = np.zeros(len(rewards))
        for t in range(rewards.shape[1] - 1, -1, -1):
            running = rewards[:, t] + self.params["gamma"] * running
            to_go[:, t] = running
        valid = mask.astype(bool)
        advantage = np.zeros_like(to_go)
        centred = to_go[valid] - to_go[valid].mean()  # the baseline: the mean return
        advantage[valid] = centred / (centred.std() + 1e-8)
        slot, picked = choice
        flat = torch.from_numpy(rows[valid])
        chosen = log_probs[flat, torch.from_numpy(slot[valid]), torch.from_numpy(picked[valid])]
        visited = log_probs[flat, torch.from_numpy(slot[valid])]
        entropy = -(visited.exp() * visited).sum(-1).mean()
        loss = -(chosen * torch.from_numpy(advantage[valid]).float()).mean()
        loss = loss - self.params["entropy"] * entropy
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(rewards.sum(axis=1).mean())

    def _rollout(self, probs: np.ndarray, rows: np.ndarray, rng: np.random.Generator | None
                 ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """Walk padded episodes ``rows`` (-1 = pad), sampling (with ``rng``) or greedily.

        ``probs[row, slot]``: the action distribution at ``row`` after holding
        ``actions[slot]`` (one slot without ``use_position``). Returns ``(slots, actions)``
        taken, as indices, and the positions held, each shaped like ``rows``.
        """
        actions = self.actions
        stateful = self.params["use_position"]
        n_episodes, steps = rows.shape
        slot = np.zeros(rows.shape, dtype=np.int64)
        picked = np.zeros(rows.shape, dtype=np.int64)
        flat_slot = int(np.flatnonzero(actions == 0.0)[0])  # every episode starts flat
        prev = np.full(n_episodes, flat_slot)
        for t in range(steps):
            current = np.where(rows[:, t] >= 0, rows[:, t], 0)
            slot[:, t] = prev if stateful else 0
            dist = probs[current, slot[:, t]]
            if rng is None:
                choice = dist.argmax(axis=1)
            else:
                u = rng.random((n_episodes, 1))
                choice = np.minimum((dist.cumsum(axis=1) < u).sum(axis=1), dist.shape[1] - 1)
            picked[:, t] = choice
            prev = np.where(rows[:, t] >= 0, choice, prev)
        held = np.where(rows >= 0, actions[picked], 0.0)
        return (slot, picked), held

    def _rewards(self, held: np.ndarray, returns: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Each step's position * return minus the cost of the change from the step before."""
        before = np.concatenate([np.zeros((len(held), 1)), held[:, :-1]], axis=1)
        return (held * returns - self.params["cost"] * np.abs(held - before)) * mask

    # -- prediction ----------------------------------------------------------------------------
    def _greedy(self, data: Any, segment: str | None, what: str) -> Any:
        if not self.fitted:
            raise NotFittedError("this policy_gradient model is not fitted yet: call fit() "
                                 "first, or load a fitted one with zoo.load(key)")
        if is_dataset(data):
            X, _, index = data.prepare(segment if data.segments else None, labels=False)
            episodes = _episodes(index)
        else:
            X, index = self._check_X(data), None
            episodes = [np.arange(len(X))]
        values = np.empty(len(X), dtype=np.float32)
        if len(X):
            probs = self._probabilities(self._inputs(self._transform(X)))
            rows = _padded(episodes, np.zeros(len(X)))[0]
            (slot, _), held = self._rollout(probs, rows, None)
            take = rows >= 0
            # P(long) is the last action's probability, at the slot the greedy path was in.
            values[rows[take]] = (held[take] if what == "position"
                                  else probs[rows[take], slot[take], -1])
        if index is None:
            return values
        import pandas as pd

        return pd.Series(values, index=index, name=what)

    def _probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """``(rows, slots, actions)`` probabilities from the torch net or an ONNX predictor."""
        rows, slots, width = inputs.shape
        flat = np.ascontiguousarray(inputs.reshape(rows * slots, width), dtype=np.float32)
        if is_onnx_predictor(self.estimator):
            out = np.asarray(self.estimator.predict(flat), dtype=np.float32)
        else:
            self.estimator.eval()
            with torch.no_grad():
                out = self.estimator(torch.from_numpy(flat)).numpy()
        return out.reshape(rows, slots, -1)

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        """States ``(rows, slots, width)``: each row once per possible previous position."""
        X = np.asarray(X, dtype=np.float32)
        if not self.params["use_position"]:
            return X[:, None, :]
        return np.stack([np.column_stack([X, np.full(len(X), a, np.float32)])
                         for a in self.actions], axis=1)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        width = self.params["n_features"]
        if width is not None and X.shape[-1] != width:
            raise ValueError(f"the policy takes {width} features per row; X has {X.shape[-1]}")
        return scale(X, self.state) if "mean" in self.state else X

    def adapter_load_options(self, format: str) -> dict[str, Any]:
        return {"builder": self.build_net} if format in ("json", "pt") else {}


_BAD_LABEL = ("PolicyGradient learns from next-day returns: build the dataset with "
              "label='label_return' (rewards are position * return)")


def _check_returns(y: np.ndarray) -> None:
    if not np.isfinite(y).all():
        raise ValueError("the labels have NaN or infinite values; " + _BAD_LABEL)
    if len(y) and np.isin(y, (0.0, 1.0)).all():
        raise ValueError("the labels are all 0 or 1, which looks like label_direction; "
                         + _BAD_LABEL)


def _episodes(index: Any) -> list[np.ndarray]:
    """Row positions grouped by instrument, each group in the index's (date) order."""
    import pandas as pd

    codes, _ = pd.factorize(index.get_level_values(1))
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(codes[order])) + 1) if len(order) else []


def _padded(episodes: list[np.ndarray], y: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Episodes as ``(rows, returns, mask)`` arrays ``(episodes, longest)``; rows -1 = pad."""
    steps = max((len(e) for e in episodes), default=0)
    rows = np.full((len(episodes), steps), -1, dtype=np.int64)
    for i, episode in enumerate(episodes):
        rows[i, :len(episode)] = episode
    mask = (rows >= 0).astype(np.float64)
    returns = np.where(rows >= 0, np.asarray(y, dtype=np.float64)[np.maximum(rows, 0)], 0.0)
    return rows, returns, mask
