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


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """Every test's default cache folder (embeddings, regeneration records) is the session's own, never ~/.cache."""
    import os

    before = os.environ.get("CXR_CACHE_DIR")
    os.environ["CXR_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("CXR_CACHE_DIR", None)
    else:
        os.environ["CXR_CACHE_DIR"] = before
