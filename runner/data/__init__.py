"""runner/data."""
