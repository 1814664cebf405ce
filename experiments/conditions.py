"""The distractor conditions of the paper (§4.3), in one table every module reads.

A condition says which feature set's distances choose a trial's four distractors, with
which distance, and whether its queries need a face on both sides:

=============  ==============  =========  ===========
condition      feature kind    distance   needs faces
=============  ==============  =========  ===========
random         (none)          (none)     no
generic        generic         cosine     no
face           face            euclidean  yes
face_generic   face_generic    cosine     yes
=============  ==============  =========  ===========

Cosine for CNN features (better than L2 throughout the paper's Fig. 2a), Euclidean for
dlib's face descriptors (what dlib's 0.6 threshold is calibrated for). An unknown name is
an error wherever a condition is named (`get`), never a default.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Condition:
    """One row of the table: ``feature_kind`` and ``distance`` are None for random."""

    name: str
    feature_kind: str | None
    distance: str | None
    needs_faces: bool

    @property
    def uses_features(self) -> bool:
        """Return whether a feature set's distances choose this condition's distractors."""
        return self.feature_kind is not None


TABLE: tuple[Condition, ...] = (
    Condition("random", None, None, False),
    Condition("generic", "generic", "cosine", False),
    Condition("face", "face", "euclidean", True),
    Condition("face_generic", "face_generic", "cosine", True),
)
BY_NAME = {c.name: c for c in TABLE}
NAMES: tuple[str, ...] = tuple(BY_NAME)
FEATURE_CONDITIONS: tuple[str, ...] = tuple(c.name for c in TABLE if c.uses_features)
# The feature kinds of the store, in the order tables list them.
FEATURE_KINDS: tuple[str, ...] = tuple(c.feature_kind for c in TABLE if c.feature_kind)
FACE_KINDS: tuple[str, ...] = tuple(c.feature_kind for c in TABLE
                                    if c.feature_kind and c.needs_faces)
# Attention checks are trials too; their condition is this name (docs/contracts.md §5).
CATCH = "catch"


class UnknownConditionError(ValueError):
    """A condition name that is not in the table."""


class UnknownKindError(ValueError):
    """A feature kind that no condition uses."""


def get(name: str) -> Condition:
    """Return the Condition named ``name``; raise UnknownConditionError naming the known
    ones otherwise."""
    try:
        return BY_NAME[name]
    except (KeyError, TypeError):
        raise UnknownConditionError(f"unknown condition {name!r} (use one of "
                                    f"{', '.join(NAMES)})") from None


def for_kind(kind: str) -> Condition:
    """Return the Condition whose distractors come from feature kind ``kind``; raise
    UnknownKindError for a kind no condition uses."""
    for c in TABLE:
        if c.feature_kind == kind:
            return c
    raise UnknownKindError(f"unknown feature kind {kind!r} (use one of "
                           f"{', '.join(FEATURE_KINDS)})")


def distance_of_kind(kind: str) -> str:
    """Return the distance a feature kind is compared with (cosine or euclidean)."""
    return for_kind(kind).distance
