"""daemon (docstring to come)."""
