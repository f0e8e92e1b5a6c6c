"""Runnable algorithm examples for :mod:`alphazoo.contrib.algorithm`.

- :mod:`alphazoo.contrib.examples.lean_sklearn` -- the LEAN documentation's scikit-learn
  example (monthly retraining, trading on the predicted direction with a probability
  threshold): ``python -m alphazoo.contrib.examples.lean_sklearn``.
"""

__all__: list[str] = []
