"""Recompute the qlib ALSTM reference numbers that tests/test_contrib_alstm.py pastes in.

Needs qlib and torch (``pip install pyqlib==0.9.7 torch==2.13.0``), not alphazoo. It builds
qlib's own network, ``qlib.contrib.model.pytorch_alstm.ALSTMModel(d_feat=6, hidden_size=64,
num_layers=2)``, once as qlib's zoo class builds it (no ``rnn_type``: qlib's default "GRU") and
once with ``rnn_type="LSTM"``, prints each one's parameter count, then sets every weight to a
fixed formula (``qlib_alstm_weights.fill``, by the parameter's position in alphazoo's names)
and prints its scores for four fixed windows. The test loads the same weights into alphazoo's
ALSTMNet by the name map in qlib_alstm_weights.py and must give the same scores::

    python tests/data/qlib_alstm_oracle.py          # prints JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from qlib.contrib.model.pytorch_alstm import ALSTMModel

sys.path.insert(0, str(Path(__file__).parent))
from qlib_alstm_weights import alphazoo_name, fill, windows  # noqa: E402


def main() -> None:
    out = {}
    x = windows()
    # qlib's network reads (batch, d_feat * steps), feature-major: each feature's steps in a row.
    flat = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1).reshape(len(x), -1)))
    for rnn_type in ("GRU", "LSTM"):
        net = ALSTMModel(d_feat=6, hidden_size=64, num_layers=2) if rnn_type == "GRU" else \
            ALSTMModel(d_feat=6, hidden_size=64, num_layers=2, rnn_type="LSTM")
        count = sum(p.numel() for p in net.parameters())
        state = {name: torch.from_numpy(fill(tuple(p.shape), i))
                 for i, (name, p) in enumerate(sorted(net.state_dict().items(),
                                                      key=lambda kv: alphazoo_name(kv[0])))}
        net.load_state_dict(state)
        with torch.no_grad():
            scores = net.eval()(flat).tolist()
        out[rnn_type] = {"parameters": count, "scores": scores}
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
