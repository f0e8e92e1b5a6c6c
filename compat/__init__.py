"""Library version compatibility: supported ranges and environment checks (see issue tracker)."""
