"""pipeline (docstring to come)."""
