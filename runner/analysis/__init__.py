"""runner/analysis."""
