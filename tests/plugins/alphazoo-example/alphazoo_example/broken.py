"""A plugin whose import fails, as a plugin with a missing dependency would."""

import alphazoo_example_missing_dependency  # noqa: F401  (does not exist on purpose)
