"""Distractor rules: the true image exactly once, random replacement, no duplicates."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from experiments import distractors as D


def test_random_candidates_hold_the_true_image_once():
    positions = Counter()
    for seed in range(200):
        rng = np.random.default_rng(seed)
        shown, ti = D.choose_candidates("random", 30, 7, rng)
        assert len(shown) == 5 and len(set(shown)) == 5
        assert shown.count(7) == 1 and shown[ti] == 7
        positions[ti] += 1
    # The display order is shuffled: the true image shows up in every position.
    assert set(positions) == {0, 1, 2, 3, 4}
    assert min(positions.values()) > 20


def test_nearest_candidates_when_true_is_in_the_top_five():
    d = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.4, 0.5, 0.05])
    top = D.nearest_candidates(d, true_col=3, rng=np.random.default_rng(0))
    assert top == [7, 1, 2, 3, 5]


def test_true_outside_top_five_replaces_one_at_random():
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9])
    replaced = Counter()
    for seed in range(100):
        top = D.nearest_candidates(d, true_col=7, rng=np.random.default_rng(seed))
        assert top.count(7) == 1 and len(set(top)) == 5
        kept = [c for c in top if c != 7]
        assert set(kept) < {0, 1, 2, 3, 4}
        replaced[top.index(7)] += 1
    assert set(replaced) == {0, 1, 2, 3, 4}


def test_no_two_copies_of_one_image():
    # columns 1 and 2 hold the same picture; column 4 is a copy of the true image (0).
    keys = ["a", "b", "b", "c", "a", "d", "e", "f"]
    d = np.array([0.9, 0.1, 0.1, 0.2, 0.0, 0.3, 0.4, 0.5])
    for seed in range(50):
        rng = np.random.default_rng(seed)
        for cond in ("random", "generic"):
            shown, ti = D.choose_candidates(cond, 8, 0, rng, d, keys)
            got = [keys[c] for c in shown]
            assert len(set(got)) == 5, (cond, shown)
            assert 4 not in shown and shown[ti] == 0
    with pytest.raises(D.DistractorError):
        D.choose_candidates("random", 5, 0, np.random.default_rng(0), None, list("aabcd"))
    with pytest.raises(ValueError):
        D.choose_candidates("colour", 8, 0, np.random.default_rng(0))


def test_infinite_distances_fill_last():
    d = np.array([np.inf, 0.3, np.nan, 0.1, np.inf, np.inf])
    top = D.nearest_candidates(d, true_col=1, rng=np.random.default_rng(0))
    assert top[:2] == [3, 1] and len(set(top[2:])) == 3 and set(top[2:]) <= {0, 2, 4, 5}


def test_few_faces_fill_with_seeded_random_distractors():
    # a face condition where only 2 of 40 pool images have a face: the true one (col 7)
    # and col 30 are near, the other three are drawn at random from the faceless ones
    d = np.full(40, np.inf)
    d[30], d[7] = 0.2, 0.5
    fills = []
    for seed in range(12):
        top = D.nearest_candidates(d, true_col=7, rng=np.random.default_rng(seed))
        assert top[:2] == [30, 7] and len(set(top)) == 5
        assert D.nearest_candidates(d, 7, np.random.default_rng(seed)) == top  # seeded
        fills.append(tuple(top[2:]))
    assert len(set(fills)) > 6                 # not the pool's first faceless images
    assert not all(f == (0, 1, 2) for f in fills)
    used = {c for f in fills for c in f}
    assert len(used) > 15 and max(used) > 30   # drawn from the whole pool
    # through choose_candidates, the face condition keeps the true one among the five
    shown, true_index = D.choose_candidates("face", 40, 7, np.random.default_rng(3), d)
    assert shown[true_index] == 7 and 30 in shown


def test_machine_choice():
    assert D.machine_choice([0.5, 0.2, 0.9, 0.2, 1.0]) == 1      # first on ties
    assert D.machine_choice([np.inf, np.inf, 3.0, np.inf, np.inf]) == 2
    assert D.machine_choice([np.inf] * 5) is None
