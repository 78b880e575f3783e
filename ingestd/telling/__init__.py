"""telling (docstring to come)."""
