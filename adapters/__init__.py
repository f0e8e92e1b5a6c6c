"""Adapter plugins, one module per ML library, each registered through the ``alphazoo``
entry-point group. A module here imports its library only inside its hooks."""
