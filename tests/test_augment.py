"""runner.augment: the paper's five seeded views are deterministic, within the paper's ranges, and bounded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runner.augment import AUG_IDS, augmented_views


def _image():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:64, 0:48] / 64.0
    return np.clip(0.5 + 0.4 * np.sin(6 * yy) * np.cos(5 * xx) + 0.05 * rng.normal(size=yy.shape), 0, 1).astype(
        np.float32)


def test_five_views_deterministic_for_image_and_seed():
    image = _image()
    first, second = augmented_views(image, seed=7), augmented_views(image.copy(), seed=7)
    assert [v.aug_id for v in first] == list(AUG_IDS) == ["rot1", "rot2", "bright1", "bright2", "contrast1"]
    for a, b in zip(first, second):
        assert a.params == b.params
        assert np.array_equal(a.image, b.image)
    other = augmented_views(image, seed=8)
    assert [v.params for v in other] != [v.params for v in first]


def test_views_are_bounded_same_shape_and_json_safe():
    image = _image()
    for seed in range(5):
        for view in augmented_views(image, seed):
            assert view.image.shape == image.shape and view.image.dtype == np.float32
            assert view.image.min() >= 0.0 and view.image.max() <= 1.0
            assert not np.array_equal(view.image, image)
            json.dumps(view.params, allow_nan=False)


def test_parameters_follow_the_paper_ranges_with_both_signs():
    image = _image()
    seen = {"rotation": set(), "brightness": set(), "contrast": set()}
    for seed in range(40):
        for view in augmented_views(image, seed):
            p = view.params
            if p["kind"] == "rotation":
                assert 5.0 <= abs(p["degrees"]) <= 10.0
                seen["rotation"].add(np.sign(p["degrees"]))
            elif p["kind"] == "brightness":
                assert 0.10 <= abs(p["shift"]) <= 0.15
                seen["brightness"].add(np.sign(p["shift"]))
            else:
                assert p["factor"] in (pytest.approx(0.9), pytest.approx(1.1))
                seen["contrast"].add(p["factor"] > 1)
    assert all(len(signs) == 2 for signs in seen.values())


def test_brightness_and_contrast_are_the_stated_operations():
    image = _image()
    views = {v.aug_id: v for v in augmented_views(image, seed=11)}
    shift = views["bright1"].params["shift"]
    np.testing.assert_allclose(views["bright1"].image, np.clip(image + shift, 0, 1), atol=1e-6)
    factor = views["contrast1"].params["factor"]
    expected = np.clip(image.mean() + factor * (image - image.mean()), 0, 1)
    np.testing.assert_allclose(views["contrast1"].image, expected, atol=1e-6)


def test_rotation_turns_the_image():
    image = np.zeros((65, 65), np.float32)
    image[32, 5:60] = 1.0  # a horizontal line through the centre
    view = augmented_views(image, seed=0)[0]
    angle = np.deg2rad(view.params["degrees"])
    rows, cols = np.nonzero(view.image > 0.3)
    slope = np.polyfit(cols - 32, rows - 32, 1)[0]
    assert abs(abs(slope) - abs(np.tan(angle))) < 0.03


def test_rejects_non_2d():
    with pytest.raises(ValueError):
        augmented_views(np.zeros((3, 8, 8), np.float32), seed=0)
