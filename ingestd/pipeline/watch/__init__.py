"""pipeline.watch (docstring to come)."""
