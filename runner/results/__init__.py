"""The result JSON (build, validate, write), the fingerprint of a run's inputs (reuse), and the figures runs and the site draw."""
