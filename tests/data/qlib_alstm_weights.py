"""The fixed weights and windows on which alphazoo's ALSTMNet is compared with qlib's
ALSTMModel: shared by tests/data/qlib_alstm_oracle.py (qlib's side) and
tests/test_contrib_alstm.py (alphazoo's). Needs numpy only."""

from __future__ import annotations

import numpy as np

# qlib's parameter names -> alphazoo's ALSTMNet names; the rnn's own names are the same.
NAMES = {"net.fc_in.": "input_layer.0.", "att_net.att_fc_in.": "attention.0.",
         "att_net.att_fc_out.": "attention.3.", "fc_out.": "output_layer.", "rnn.": "rnn."}


def alphazoo_name(name: str) -> str:
    """alphazoo's name for qlib's parameter ``name``."""
    for prefix, ours in NAMES.items():
        if name.startswith(prefix):
            return ours + name[len(prefix):]
    raise KeyError(name)


def fill(shape: tuple[int, ...], position: int) -> np.ndarray:
    """Deterministic, non-symmetric weights: a sine over the flattened parameter, its phase
    the parameter's position in alphazoo's sorted names."""
    size = int(np.prod(shape))
    return (0.3 * np.sin(np.arange(size) * 0.37 + position)).reshape(shape).astype(np.float32)


def windows() -> np.ndarray:
    """Four windows of 8 steps and 6 features, ``(batch, steps, d_feat)``, oldest step first."""
    return np.random.default_rng(7).normal(size=(4, 8, 6)).astype(np.float32)
