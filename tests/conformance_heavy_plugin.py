"""A toy adapter whose module imports its library at import time (scikit-learn standing in),
which the conformance kit's light_import check must refuse (tests/test_conformance.py)."""

import sklearn  # noqa: F401  (imported at module import on purpose)
from conformance_plugins import ToyAdapter

adapter = ToyAdapter()
