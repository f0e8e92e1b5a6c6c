"""The zoo: qlib-style models, features, strategies and examples (grows with later releases)."""
