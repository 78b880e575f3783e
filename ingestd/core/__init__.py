"""core (docstring to come)."""
