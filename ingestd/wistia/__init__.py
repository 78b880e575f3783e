"""wistia (docstring to come)."""
