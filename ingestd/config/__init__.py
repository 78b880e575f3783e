"""config (docstring to come)."""
