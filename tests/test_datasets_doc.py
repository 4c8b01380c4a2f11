"""docs/datasets.md is generated from the cards (`python -m registry.datasets_doc`) and must be current."""

from __future__ import annotations

import shutil
from pathlib import Path

from registry import datasets_doc
from registry.cards import load_registry

REPO = Path(__file__).resolve().parents[1]


def test_datasets_doc_is_current():
    assert datasets_doc.main(["--check"]) == 0, "run `python -m registry.datasets_doc`"


def test_the_doc_follows_the_cards(tmp_path):
    """A card change shows in the generated tables: licence, size and label rule come from the card."""
    root = tmp_path / "reg"
    for folder in ("registry/datasets", "tasks", "encoders"):
        shutil.copytree(REPO / folder, root / folder)
    card = root / "registry/datasets/vindr-cxr.yaml"
    card.write_text(card.read_text().replace("positive_min: 2", "positive_min: 3").replace("images: 15000",
                                                                                            "images: 14999"))
    text = datasets_doc.render(load_registry(root))
    assert "≥ 3 readers" in text and "≥ 2 readers" not in text and "| 14,999 |" in text
    assert "sampled at run time" in text and "committed, sha256" not in text  # no manifests/ in the copy
    for dataset in ("chexpert", "padchest", "rsna-pneumonia", "vindr-cxr", "siim-acr", "nih-cxr14", "mimic-cxr-jpg"):
        assert f"`{dataset}`" in text
