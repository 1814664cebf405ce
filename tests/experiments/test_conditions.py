"""The one table of conditions, and an unknown condition is an error everywhere."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from experiments import conditions, distractors
from experiments import designs as G
from experiments import distance_sources as ds

IDS = [f"{i:05d}" for i in range(8)]


def test_the_table_says_what_each_condition_means():
    rows = {c.name: (c.feature_kind, c.distance, c.needs_faces) for c in conditions.TABLE}
    assert rows == {"random": (None, None, False),
                    "generic": ("generic", "cosine", False),
                    "face": ("face", "euclidean", True),
                    "face_generic": ("face_generic", "cosine", True)}
    # every module reads the table instead of keeping its own list
    assert distractors.CONDITIONS == conditions.NAMES
    assert ds.FACE_KINDS == ("face", "face_generic")
    assert [ds.default_metric(k) for k in conditions.FEATURE_KINDS] == ["cosine", "euclidean",
                                                                         "cosine"]


def _generic():
    rng = np.random.default_rng(1)
    return SimpleNamespace(key="generic/toy", kind="generic", ids=IDS,
                           left=rng.normal(size=(8, 4)), right=rng.normal(size=(8, 4)))


@pytest.mark.parametrize("bad", ["face-generic", "Random", "", None])
def test_an_unknown_condition_is_an_error_everywhere(bad):
    rng = np.random.default_rng(0)
    with pytest.raises(conditions.UnknownConditionError, match="use one of random, generic"):
        conditions.get(bad)
    with pytest.raises(conditions.UnknownConditionError):
        distractors.choose_candidates(bad, 8, 0, rng, np.arange(8.0))
    with pytest.raises(conditions.UnknownConditionError):
        G.eligible_queries(bad, IDS, _generic())
    design = G.Design("x", [G.ConditionSpec(bad, "all", 2)])
    # resolve_feature_sets used to send every unknown name to face_generic
    with pytest.raises(conditions.UnknownConditionError):
        G.resolve_feature_sets(design, ["generic/toy", "face_generic/toy_hog"])
    fs = _generic()
    with pytest.raises(conditions.UnknownConditionError):
        G.build_trials(design, 0, {"all": IDS}, {fs.key: fs}, {},
                       {(p, s): p + s for p in IDS for s in ("left", "right")})
    with pytest.raises(G.DesignError, match="unknown condition"):
        G.design_from_spec({"conditions": [{"condition": bad, "subset": "all", "count": 2}]})
    with pytest.raises(G.DesignError, match="feature_sets maps"):
        G.design_from_spec({"conditions": [{"condition": "random", "subset": "all", "count": 2}],
                            "feature_sets": {str(bad): "generic/toy"}})


def test_an_unknown_feature_kind_is_an_error():
    with pytest.raises(conditions.UnknownKindError, match="use one of generic, face, face_generic"):
        ds.default_metric("faces")
    with pytest.raises(conditions.UnknownKindError):
        ds.default_key("colour", ["generic/toy"])
