"""telling.notify (docstring to come)."""
