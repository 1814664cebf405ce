"""The distractor generator: the five candidates of a trial and the machine's choice.

Pure functions on index arrays and distance rows. The candidate pool of a trial is the
right images of its subset; candidates are pool positions until the design names them.

* ``random``: the true right image and four other pool images drawn at random.
* ``generic``, ``face``, ``face_generic``: the five pool images nearest the query by that
  feature (stable order, so ties go to the earlier pool position); if the true one is not
  among them it replaces one of the five, chosen at random. When fewer than five pool
  images have the feature (few faces), seeded random pool images fill the rest.
* Never two copies of one image: pool images with equal content keys (sha256) count as
  one, and a copy of the true image is never a distractor.
* Display order is a seeded shuffle of the five; with ``true_position`` the true image
  takes that place and the four others a seeded shuffle of the rest (designs balance the
  true image's place per cell with `balanced_positions`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments import conditions

CONDITIONS = conditions.NAMES
FEATURE_CONDITIONS = conditions.FEATURE_CONDITIONS
N_CANDIDATES = 5


class DistractorError(Exception):
    """The pool cannot give five distinct candidates."""


def _distinct(order: Sequence[int], true_col: int, keys: Sequence, want: int) -> list[int]:
    """First ``want`` columns of ``order`` whose key is new and not the true image's key."""
    seen = {keys[true_col]}
    out: list[int] = []
    for c in order:
        c = int(c)
        if c == true_col or keys[c] in seen:
            continue
        seen.add(keys[c])
        out.append(c)
        if len(out) == want:
            break
    return out


def nearest_candidates(distances: np.ndarray, true_col: int, rng: np.random.Generator,
                       keys: Sequence | None = None, n: int = N_CANDIDATES) -> list[int]:
    """Return the ``n`` pool positions nearest by ``distances`` (ties to the earlier
    position), with the true one put in place of one of them at random when it is not
    among them. Pool images without a finite distance (no face) fill the places left,
    drawn at random from ``rng``. Order: nearest first (not yet shuffled)."""
    d = np.asarray(distances, dtype=np.float64)
    finite = np.isfinite(d)
    keys = list(range(len(d))) if keys is None else list(keys)
    top: list[int] = []
    seen: set = set()

    def take(order) -> None:
        for c in order:
            c = int(c)
            if len(top) == n:
                return
            if keys[c] in seen or (c != true_col and keys[c] == keys[true_col]):
                continue
            seen.add(keys[c])
            top.append(c)

    near = np.flatnonzero(finite)
    take(near[np.argsort(d[near], kind="stable")])
    if len(top) < n:
        # too few images with the feature (a face condition on a pool with few faces):
        # the rest are random distractors, drawn from the seeded generator
        take(rng.permutation(np.flatnonzero(~finite)))
    if len(top) < n:
        raise DistractorError(f"the pool holds only {len(top)} distinct images; "
                              f"a trial needs {n}")
    if true_col not in top:
        top[int(rng.integers(n))] = true_col
    return top


def random_candidates(pool_size: int, true_col: int, rng: np.random.Generator,
                      keys: Sequence | None = None, n: int = N_CANDIDATES) -> list[int]:
    """Return the true pool position followed by ``n - 1`` distinct others drawn at random."""
    keys = list(range(pool_size)) if keys is None else list(keys)
    others = _distinct(rng.permutation(pool_size), true_col, keys, n - 1)
    if len(others) < n - 1:
        raise DistractorError(f"the pool holds only {len(others) + 1} distinct images; "
                              f"a trial needs {n}")
    return [true_col] + others


def shuffle_display(candidates: Sequence[int], true_col: int, rng: np.random.Generator
                    ) -> tuple[list[int], int]:
    """Return ``(candidates in a random display order, 0-based index of true_col)``."""
    perm = rng.permutation(len(candidates))
    shown = [int(candidates[i]) for i in perm]
    return shown, shown.index(int(true_col))


def place_true(candidates: Sequence[int], true_col: int, position: int,
               rng: np.random.Generator) -> tuple[list[int], int]:
    """Return ``(candidates in display order, position)``: the true one at ``position``
    (0-based), the others in a random order around it."""
    others = [int(c) for c in candidates if int(c) != int(true_col)]
    if not 0 <= position <= len(others):
        raise ValueError(f"display position {position} outside 0..{len(others)}")
    shown = [others[i] for i in rng.permutation(len(others))]
    shown.insert(position, int(true_col))
    return shown, position


def balanced_positions(count: int, rng: np.random.Generator,
                       n: int = N_CANDIDATES) -> list[int]:
    """Return the true image's display position (0-based) for each of ``count`` trials of
    one cell: every position equally often (``count // n`` times), the remaining
    ``count % n`` trials at distinct positions drawn at random, all in a random order."""
    places = [p for p in range(n) for _ in range(count // n)]
    places += [int(p) for p in rng.choice(n, count % n, replace=False)]
    return [places[i] for i in rng.permutation(len(places))]


def choose_candidates(condition: str, pool_size: int, true_col: int,
                      rng: np.random.Generator, distances: np.ndarray | None = None,
                      keys: Sequence | None = None,
                      true_position: int | None = None) -> tuple[list[int], int]:
    """Return ``(five pool positions in display order, index of the true one)`` for a
    trial of ``condition``; feature conditions need the query's ``distances`` to the pool.
    ``true_position``: where the true one is shown (None: a random place)."""
    if not conditions.get(condition).uses_features:
        cands = random_candidates(pool_size, true_col, rng, keys)
    elif distances is None:
        raise ValueError(f"condition {condition!r} needs the query's distances")
    else:
        cands = nearest_candidates(distances, true_col, rng, keys)
    if true_position is not None:
        return place_true(cands, true_col, true_position, rng)
    return shuffle_display(cands, true_col, rng)


def machine_choice(distances: Sequence[float]) -> int | None:
    """Return the display position (0-based) of the candidate nearest the query, the
    first one on ties; None when no distance is finite."""
    d = np.asarray(distances, dtype=np.float64)
    finite = np.isfinite(d)
    if not finite.any():
        return None
    return int(np.argmin(np.where(finite, d, np.inf)))
