"""Example third-party alphazoo plugin (test fixture)."""
