#!/usr/bin/env bash
# Fetch (here, where PyPI works) the wheels benchmarks/device_check.sh needs on the GPU machine (Python 3.12,
# x86-64), into .whl/ at the repo root, and keep .whl/ out of git. Then: device run with carry=[".whl"].
# The machine's image has torch, timm, numpy, pandas, pyarrow, scipy, scikit-learn, jinja2 (device README, KINDS.md),
# not pydicom, jsonschema or LightGBM (runner eval's classifier stage); the wheels below are ~6 MB of the 64 MiB carry.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "pydicom==3.0.2" "jsonschema==4.26.0" "jsonschema-specifications==2025.9.1" "referencing==0.37.0" "rpds-py==2026.9.1" \
  "lightgbm==4.7.0"
ls -la .whl
