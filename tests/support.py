"""What many tests share: the project's own registry paths (registry.home), in one place."""

from __future__ import annotations

from pathlib import Path

from registry.home import find_home

REPO = Path(__file__).resolve().parents[1]
HOME = find_home(REPO)  # the project's own registry, whatever $CXR_REGISTRY_ROOT says
RESULTS_DIR = HOME.results_dir  # the filed results (the paper's Table 1, the shortcut floors, the demo)
TABLE_PATH = HOME.publications_dir / "shin2025-table1.yaml"  # the paper's Table 1 as a publication record
