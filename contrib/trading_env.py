"""A gymnasium environment for trading one price series: positions in, profit and loss out.

:class:`TradingEnv` walks a daily close series (by default one of the bundled symbols,
:mod:`alphazoo.datasets`) one bar at a time. At bar ``t`` the agent sees the last ``window``
returns (in percent, so a small network sees numbers near one; clipped to +-100) and the
position it holds, and chooses the position to hold over ``t -> t+1``:

- ``Discrete(3)`` actions by default: 0 short, 1 flat, 2 long (positions -1, 0, 1);
- ``continuous=True``: a ``Box(-1, 1, (1,))`` action, the position itself (a fraction of the
  capital, short when negative).

The reward is the position's return less the cost of changing it:
``reward = position * return[t+1] - cost * |position - previous position|`` (returns as
fractions, ``cost`` per unit of position traded: 0.0005 is five basis points). An episode
starts flat at the first bar with a full window and ends at the last bar (``terminated``), or
after ``episode_length`` steps from a random start (``truncated``), so one series gives many
episodes. ``info`` holds the bar's date, the position held and the step's return.

Train a stable-baselines3 policy on it and store it with the sb3 adapter::

    from stable_baselines3 import PPO
    from alphazoo.contrib.trading_env import TradingEnv

    env = TradingEnv("AAPL", window=10, episode_length=250)
    model = PPO("MlpPolicy", env, n_steps=256, seed=0).learn(20_000)
    zoo.save(model, "rl/aapl-ppo")                    # json: safe, bit-exact
    zoo.save(model, "rl/aapl-ppo-onnx", format="onnx")  # served without torch or SB3

This module imports gymnasium: it loads only when the environment is used.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["TradingEnv"]

#: Observed returns are in percent, clipped to this (a daily move beyond 100% is data error
#: or a listing event, and the observation space needs finite bounds).
_MAX_PERCENT = 100.0


class TradingEnv(gym.Env[np.ndarray, Any]):
    """Positions on one price series (see the module's documentation).

    :param symbol: a bundled symbol (:func:`alphazoo.datasets.symbols`), used when ``prices``
        is None.
    :param window: how many past returns an observation holds.
    :param cost: the cost of trading one unit of position, as a fraction of capital.
    :param prices: a close price series to trade instead of the bundled one (oldest first).
    :param continuous: ``Box(-1, 1)`` positions instead of ``Discrete(3)`` short/flat/long.
    :param episode_length: steps per episode from a random start; None runs the whole series
        from its start.
    """

    metadata = {"render_modes": []}

    def __init__(self, symbol: str = "AAPL", *, window: int = 10, cost: float = 0.0005,
                 prices: Any = None, continuous: bool = False,
                 episode_length: int | None = None) -> None:
        if prices is None:
            from alphazoo.datasets import load_prices

            bars = load_prices(symbol)
            close, self.dates = bars.close, bars.dates
        else:
            close = np.asarray(prices, dtype=np.float64).ravel()
            self.dates = np.arange(len(close))
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        if not np.all(np.isfinite(close)) or np.any(close <= 0):
            raise ValueError("prices must be positive and finite")
        if len(close) < window + 2:
            raise ValueError(f"{len(close)} prices are too few for a window of {window} and "
                             "one step")
        if episode_length is not None and not 1 <= episode_length <= len(close) - window - 1:
            raise ValueError(f"episode_length must be from 1 to {len(close) - window - 1} for "
                             f"this series and window, not {episode_length}")
        self.symbol = symbol if prices is None else "custom"
        self.window = window
        self.cost = float(cost)
        self.continuous = continuous
        self.episode_length = episode_length
        #: returns[t] is the return from bar t-1 to bar t (returns[0] = 0).
        self.returns = np.concatenate([[0.0], close[1:] / close[:-1] - 1.0])
        # Returns in percent, clipped to +-100 (a price cannot fall below zero), then the
        # position in [-1, 1].
        bound = np.append(np.full(window, _MAX_PERCENT), 1.0).astype(np.float32)
        self.observation_space = spaces.Box(-bound, bound, dtype=np.float32)
        self.action_space: spaces.Space[Any] = (
            spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32) if continuous
            else spaces.Discrete(3))
        self._t = window
        self._end = len(close) - 1
        self._position = 0.0

    def _observation(self) -> np.ndarray:
        past = np.clip(self.returns[self._t - self.window + 1:self._t + 1] * 100.0,
                       -_MAX_PERCENT, _MAX_PERCENT)
        return np.append(past, self._position).astype(np.float32)

    def _info(self, step_return: float = 0.0) -> dict[str, Any]:
        return {"date": str(self.dates[self._t]), "position": self._position,
                "return": step_return}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        first = self.window
        if self.episode_length is None:
            self._t, self._end = first, len(self.returns) - 1
        else:
            last_start = len(self.returns) - 1 - self.episode_length
            self._t = int(self.np_random.integers(first, last_start + 1))
            self._end = self._t + self.episode_length
        self._position = 0.0
        return self._observation(), self._info()

    def position_of(self, action: Any) -> float:
        """The position an action asks for: -1, 0 or 1, or the clipped Box value."""
        if self.continuous:
            return float(np.clip(np.asarray(action, dtype=np.float64).ravel()[0], -1.0, 1.0))
        action = int(np.asarray(action).ravel()[0]) if np.ndim(action) else int(action)
        if action not in (0, 1, 2):
            raise ValueError(f"action must be 0 (short), 1 (flat) or 2 (long), not {action}")
        return float(action - 1)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        position = self.position_of(action)
        step_return = float(self.returns[self._t + 1])
        reward = position * step_return - self.cost * abs(position - self._position)
        self._position = position
        self._t += 1
        at_end = self._t >= self._end
        terminated = at_end and self._t >= len(self.returns) - 1
        truncated = at_end and not terminated
        return self._observation(), float(reward), terminated, truncated, self._info(step_return)
