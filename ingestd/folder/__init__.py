"""folder (docstring to come)."""
