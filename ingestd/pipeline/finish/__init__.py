"""pipeline.finish (docstring to come)."""
