"""Shared fixtures. Data is made by code (synthetic DICOMs) or comes from packages (pydicom-data)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory):
    """A small synthetic demo data set, built once per session (read-only: copy it before changing anything).

    80 patients -> ~220 DICOM files (~190 frontal), images ~128 px for speed; layout and mix as `runner demo-data`:
    metadata.csv, README.txt, demo_data.json (seed, counts, deliberately corrupt files), files/.
    """
    from runner.data.synthetic import make_demo_dataset

    out = tmp_path_factory.mktemp("demo-data") / "demo"
    make_demo_dataset(out, seed=0, n_patients=80, image_size=128)
    return out
