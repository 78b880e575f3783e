"""cli (docstring to come)."""
