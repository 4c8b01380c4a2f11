"""How a run's processes behave, shared by every stage: signals (Ctrl-C/SIGTERM), atomic file writes, progress lines."""
