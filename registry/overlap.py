"""Training-data overlap: was an encoder trained on the data set a result evaluates it on?

MTEB marks models that are not zero-shot on a task; the leaderboard does the same from the encoder card's
`training_datasets` (dataset card ids whose images the weights saw in pretraining or fine-tuning). Pure functions of
card data, so the site, the exports and the tests ask the same question the same way.
"""

from __future__ import annotations

from collections.abc import Mapping


def trained_on(encoder_card: Mapping, dataset_id: str) -> bool | None:
    """True: the encoder was trained on `dataset_id`'s images; False: its card lists its training data sets and this
    is not one; None: the card does not say (unknown)."""
    listed = encoder_card.get("training_datasets")
    if listed is None:
        return None
    return str(dataset_id) in {str(d) for d in listed}


def unknown_training_datasets(encoder_cards: Mapping[str, Mapping], dataset_ids) -> dict[str, list[str]]:
    """encoder id -> the ids in its `training_datasets` that name no dataset card (a typo would hide an overlap)."""
    known = set(dataset_ids)
    out = {}
    for encoder_id, card in encoder_cards.items():
        unknown = [d for d in card.get("training_datasets") or [] if d not in known]
        if unknown:
            out[encoder_id] = unknown
    return out
