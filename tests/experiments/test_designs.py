"""Designs on synthetic feature sets: counts, disjointness, machine choices, catch trials,
HIT grouping, determinism and every shortfall."""
from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from experiments import designs as G
from experiments import experiment_file as ef

N = 200
IDS = [f"{i:05d}" for i in range(N)]


def face_set(per_image):
    counts = [len(f) for f in per_image]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    vecs = np.array([v for f in per_image for v in f]) if sum(counts) else np.zeros((0, 4))
    return SimpleNamespace(vectors=vecs, offsets=offsets)


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(0)
    left = rng.normal(size=(N, 16))
    right = left + rng.normal(scale=1.0, size=left.shape)
    generic = SimpleNamespace(key="generic/toy", kind="generic", ids=IDS, left=left, right=right)
    # Pairs 100..199 have faces (some with two on the left); 0..99 have none.
    lf = [[] if i < 100 else [rng.normal(size=4)] * (1 + (i % 3 == 0)) for i in range(N)]
    rf = [[] if i < 100 else [lf[i][0] + rng.normal(scale=0.3, size=4)] for i in range(N)]
    face = SimpleNamespace(key="face/dlib_hog", kind="face", ids=IDS,
                           left=face_set(lf), right=face_set(rf))
    fg = SimpleNamespace(key="face_generic/toy_hog", kind="face_generic", ids=IDS,
                         left=face_set([[v * 2 + 1 for v in f] for f in lf]),
                         right=face_set([[v * 2 + 1 for v in f] for f in rf]))
    fsets = {fs.key: fs for fs in (generic, face, fg)}
    cond_keys = {"generic": generic.key, "face": face.key, "face_generic": fg.key}
    content = {(p, s): f"{s}-{p}" for p in IDS for s in ("left", "right")}
    subsets = {"all": IDS, "TLL_obj": IDS[:110], "TLL_d": IDS[60:]}
    return SimpleNamespace(fsets=fsets, cond_keys=cond_keys, content=content,
                           subsets=subsets, lf=lf, rf=rf, left=left, right=right)


def build(study, design, seed=0, subsets=None):
    return G.build_trials(design, seed, subsets or study.subsets, study.fsets,
                          study.cond_keys, study.content)


def test_paper_design_counts_and_disjointness(study):
    trials, hits = build(study, G.paper_design())
    assert len(trials) == 120 and len(hits) == 120
    per = Counter((t["condition"], t["subset"]) for t in trials)
    assert per == {("random", "TLL_obj"): 20, ("generic", "TLL_obj"): 20,
                   ("random", "TLL_d"): 20, ("face", "TLL_d"): 20,
                   ("face_generic", "TLL_d"): 20, ("generic", "TLL_d"): 20}
    assert len({t["pair"] for t in trials}) == 120                  # no pair used twice
    for t in trials:
        assert t["pair"] in study.subsets[t["subset"]]
        pool = {"R" + p for p in study.subsets[t["subset"]]}
        assert set(t["candidates"]) <= pool and len(set(t["candidates"])) == 5
        assert t["candidates"][t["true_index"]] == "R" + t["pair"]
        assert t["candidates"].count("R" + t["pair"]) == 1
        if t["condition"].startswith("face"):
            i = IDS.index(t["pair"])
            assert study.lf[i] and study.rf[i]                        # finite feature
    assert [h["trials"] for h in hits] == [[t["id"]] for t in trials]
    assert [t["id"] for t in trials] == [f"t{i:04d}" for i in range(1, 121)]


def test_generic_distractors_are_the_nearest(study):
    design = G.Design("g", [G.ConditionSpec("generic", "all", 30)])
    trials, _ = build(study, design, seed=3)
    d = cdist(study.left, study.right, "cosine")
    for t in trials:
        i = IDS.index(t["pair"])
        top5 = {"R" + IDS[j] for j in np.argsort(d[i], kind="stable")[:5]}
        cands = set(t["candidates"])
        if "R" + t["pair"] in top5:
            assert cands == top5
        else:
            assert len(cands & top5) == 4


def test_machine_choices_are_the_nearest_candidate(study):
    design = G.Design("m", [G.ConditionSpec("random", "TLL_d", 15),
                            G.ConditionSpec("face", "TLL_d", 15)])
    trials, _ = build(study, design, seed=1)
    for t in trials:
        q = IDS.index(t["pair"])
        cols = [IDS.index(c[1:]) for c in t["candidates"]]
        d = cdist(study.left[q:q + 1], study.right[cols], "cosine")[0]
        assert t["machine_choices"]["generic/toy"] == int(np.argmin(d))
        fd = [min((np.linalg.norm(a - b) for a in study.lf[q] for b in study.rf[c]),
                  default=np.inf) for c in cols]
        expect = None if not np.isfinite(fd).any() else int(np.argmin(fd))
        assert t["machine_choices"]["face/dlib_hog"] == expect
        assert set(t["machine_choices"]) == set(study.fsets)
    assert any(t["machine_choices"]["face/dlib_hog"] is None for t in trials
               if not study.lf[IDS.index(t["pair"])])


def test_blocks_and_catch_trials(study):
    design = G.Design("blocks", [G.ConditionSpec(c, "all", 5) for c in
                                 ("random", "generic", "face", "face_generic")],
                      trials_per_hit=3, catch_trials=2)
    trials, hits = build(study, design, seed=7)
    assert len(trials) == 22
    assert [len(h["trials"]) for h in hits] == [3] * 7 + [1]
    assert sorted(x for h in hits for x in h["trials"]) == sorted(t["id"] for t in trials)
    catch = [t for t in trials if t["catch"]]
    assert len(catch) == 2
    for t in catch:
        assert t["condition"] == "catch"
        assert t["candidates"][t["true_index"]] == t["query"]
        assert len(set(t["candidates"])) == 5 and "R" + t["pair"] not in t["candidates"]
        assert t["machine_choices"]["generic/toy"] == t["true_index"]   # distance 0
    assert len({t["pair"] for t in trials}) == 22
    # Conditions are mixed across HITs, not in design order.
    assert [t["condition"] for t in trials[:5]] != ["random"] * 5


def test_same_seed_same_trials_other_seed_other_trials(study):
    design = G.paper_design()
    a = build(study, design, seed=11)
    assert a == build(study, design, seed=11)
    assert a != build(study, design, seed=12)


def test_shortfalls_name_each_cell_and_add_up(study):
    # TLL_obj = pairs 0..109, TLL_d = 60..199, faces on both sides: 100..199
    design = G.Design("big", [G.ConditionSpec("face", "TLL_d", 130),
                              G.ConditionSpec("random", "TLL_obj", 20)])
    with pytest.raises(G.DesignError) as exc:
        build(study, design)
    assert str(exc.value).splitlines() == [
        "condition face on TLL_d: 100 suitable pairs with a face on both sides, 130 needed: "
        "short by 30",
        "condition random on TLL_obj: 110 suitable pairs, 20 needed",
        "together the cells need 150 distinct pairs (no pair is the query of two trials) "
        "and their subsets can give at most 120: short by 30"]
    # Disjointness: 110 pairs in TLL_obj cannot serve 60 + 60 queries.
    design = G.Design("two", [G.ConditionSpec("random", "TLL_obj", 60),
                              G.ConditionSpec("generic", "TLL_obj", 60)])
    with pytest.raises(G.DesignError, match="need 120 distinct pairs .* at most 110: short by 10"):
        build(study, design)
    design.disjoint = False
    trials, _ = build(study, design)
    assert len(trials) == 120


def test_paper_design_per_condition(study):
    # 6 x 34 = 204 queries from 200 pairs: every cell alone has enough, together short by 4
    with pytest.raises(G.DesignError) as exc:
        build(study, G.paper_design(34))
    lines = str(exc.value).splitlines()
    assert lines[:2] == ["condition random on TLL_obj: 110 suitable pairs, 34 needed",
                         "condition generic on TLL_obj: 110 suitable pairs, 34 needed"]
    assert lines[3] == ("condition face on TLL_d: 100 suitable pairs with a face on both "
                        "sides, 34 needed")
    assert lines[-1].endswith("need 204 distinct pairs (no pair is the query of two trials) "
                              "and their subsets can give at most 200: short by 4")
    # 6 x 33 = 198 fits: found even where a plain random draw would strand a cell
    for seed in range(4):
        trials, hits = build(study, G.paper_design(33), seed=seed)
        assert len(trials) == 198 and len({t["pair"] for t in trials}) == 198
        for t in trials:
            assert t["pair"] in study.subsets[t["subset"]]
            if t["condition"] in ("face", "face_generic"):
                assert int(t["pair"]) >= 100
    with pytest.raises(G.DesignError, match="positive integer"):
        G.paper_design(0)
    with pytest.raises(G.DesignError, match="--per-condition is for --design paper"):
        G.load_design("custom", "spec.json", 5)
    assert [c.count for c in G.load_design("paper", None, 7).conditions] == [7] * 6
    assert [c.count for c in G.load_design("paper", None).conditions] == [20] * 6


def test_a_negative_seed_is_a_clear_error(study):
    with pytest.raises(G.DesignError, match="seed must be a non-negative integer"):
        build(study, G.paper_design(), seed=-5)


def test_face_condition_on_a_subset_without_faces(study):
    design = G.Design("nf", [G.ConditionSpec("face_generic", "noface", 3)])
    with pytest.raises(G.DesignError, match="no pair of the subset has a face"):
        build(study, design, subsets={"noface": IDS[:50]})


def test_spec_validation():
    d = G.design_from_spec({"name": "x", "conditions": [
        {"condition": "face", "subset": "TLL_d", "count": 4}], "trials_per_hit": 2,
        "catch_trials": 1, "feature_sets": {"face": "face/dlib_cnn"}})
    assert d.conditions == [G.ConditionSpec("face", "TLL_d", 4)]
    assert (d.trials_per_hit, d.catch_trials, d.feature_sets) == (2, 1, {"face": "face/dlib_cnn"})
    with pytest.raises(G.DesignError) as exc:
        G.design_from_spec({"conditions": [{"condition": "colour", "count": 0}],
                            "trials_per_hit": 0})
    msg = str(exc.value)
    assert "unknown condition 'colour'" in msg and "count must be" in msg
    assert "trials_per_hit" in msg and len(msg.splitlines()) == 3
    with pytest.raises(G.DesignError, match="feature_sets.face"):
        G.design_from_spec({"conditions": [{"condition": "face", "count": 1}],
                            "feature_sets": {"face": "generic/x"}})


def test_resolve_feature_sets():
    keys = ["face/dlib_hog", "face_generic/efficientnet_lite0_hog", "generic/efficientnet_lite0"]
    got = G.resolve_feature_sets(G.paper_design(), keys)
    assert got == {"generic": "generic/efficientnet_lite0", "face": "face/dlib_hog",
                   "face_generic": "face_generic/efficientnet_lite0_hog"}
    with pytest.raises(G.DesignError, match="features STUDY_DIR --kind generic --model resnet50"):
        G.resolve_feature_sets(G.paper_design(), keys, generic_model="resnet50")
    with pytest.raises(G.DesignError, match="--kind face_generic"):
        G.resolve_feature_sets(G.paper_design(), keys[:1] + keys[2:])


def test_document_check():
    doc = ef.make_document(seed=0, image_root=".", manifest_sha256="x", design={},
                           feature_sets=[], images=[{"id": f"R{i}"} for i in range(5)]
                           + [{"id": "L0"}],
                           trials=[{"id": "t0001", "query": "L0", "candidates":
                                    [f"R{i}" for i in range(5)], "true_index": 0}],
                           hits=[{"id": "h0001", "trials": ["t0001"]}])
    ef.check(doc)
    doc["hits"] = []
    with pytest.raises(ef.ExperimentFileError, match="exactly one HIT"):
        ef.check(doc)


def test_true_position_is_balanced_per_cell(study):
    """In every cell the true image is shown at each of the five places equally often:
    20 trials -> 4 each; a cell of 7 -> 1 each plus 2 at distinct random places; other
    seeds vary which places get the extra trials and the order, never the balance."""
    trials, _ = build(study, G.paper_design())
    per_cell: dict = {}
    for t in trials:
        per_cell.setdefault((t["condition"], t["subset"]), []).append(t["true_index"])
    for cell, places in per_cell.items():
        assert Counter(places) == {p: 4 for p in range(5)}, cell
    extras = set()
    for seed in range(6):
        design = G.Design("seven", [G.ConditionSpec("random", "TLL_d", 7),
                                    G.ConditionSpec("generic", "TLL_obj", 7)])
        ts, _ = build(study, design, seed=seed)
        for cond in ("random", "generic"):
            c = Counter(t["true_index"] for t in ts if t["condition"] == cond)
            assert sorted(c.values()) == [1, 1, 1, 2, 2] and set(c) == set(range(5))
            extras.add(tuple(sorted(p for p, n in c.items() if n == 2)))
        assert all(t["candidates"][t["true_index"]] == "R" + t["pair"] for t in ts)
    assert len(extras) > 1                       # the remainder's places are drawn
    from experiments import distractors as D
    assert D.balanced_positions(0, np.random.default_rng(0)) == []
