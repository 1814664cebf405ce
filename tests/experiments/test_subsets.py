"""Near-duplicate rules on a crafted study: each rule triggered by a pair built for it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import files
from experiments import subsets as S

IDS = [f"p{i:02d}" for i in range(14)]


def unit(k, dim=40):
    v = np.zeros(dim)
    v[k] = 1.0
    return v


def faces(per_image, dim=40):
    """(vectors, offsets) from a list of lists of face vectors."""
    counts = [len(f) for f in per_image]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    vecs = [v for f in per_image for v in f]
    return (np.array(vecs) if vecs else np.zeros((0, dim))), offsets


@pytest.fixture(scope="module")
def crafted():
    n = len(IDS)
    left = np.array([unit(2 * i) for i in range(n)])
    right = np.array([unit(2 * i + 1) for i in range(n)])
    left[1] = left[0] + 0.1 * unit(39)          # p00 ~ p01 (left): cos dist ~0.005
    right[3] = right[2] + 0.1 * unit(39)        # p02 ~ p03 (right)
    right[5] = left[4] + 0.2 * unit(38)         # left p04 ~ right p05: cross
    right[7] = right[6] + 0.5397 * unit(37)     # p06 ~ p07 (right) at cos dist 0.12
    far = [10 * unit(k) for k in range(40)]
    lf = [[] for _ in range(n)]
    rf = [[] for _ in range(n)]
    lf[8] = [far[0]]
    lf[9] = [far[0] + 0.3 * unit(5)]            # face left duplicate, 0.3
    rf[10] = [far[1], far[2]]
    rf[11] = [far[2] + 0.35 * unit(5)]          # face right duplicate, 0.35
    lf[12] = [far[3]]
    rf[13] = [far[3] + 0.2 * unit(5)]           # face cross duplicate, 0.2
    return left, right, faces(lf), faces(rf)


def test_each_rule_triggers(crafted):
    left, right, fl, fr = crafted
    reasons = S.near_duplicate_reasons(IDS, left, right, fl, fr)
    by_rule = {}
    for r in reasons:
        by_rule.setdefault(r["rule"], {})[r["id"]] = r
    assert set(by_rule["left_duplicate"]) == {"p00", "p01"}
    assert by_rule["left_duplicate"]["p00"]["other"] == "Lp01"
    assert by_rule["left_duplicate"]["p00"]["distance"] == pytest.approx(1 - 1 / np.sqrt(1.01), abs=1e-5)
    assert set(by_rule["right_duplicate"]) == {"p02", "p03"}
    assert by_rule["right_duplicate"]["p03"]["other"] == "Rp02"
    assert set(by_rule["cross_duplicate"]) == {"p04"}
    assert by_rule["cross_duplicate"]["p04"]["other"] == "Rp05"
    assert set(by_rule["face_left_duplicate"]) == {"p08", "p09"}
    assert by_rule["face_left_duplicate"]["p09"]["distance"] == pytest.approx(0.3)
    assert set(by_rule["face_right_duplicate"]) == {"p10", "p11"}
    assert by_rule["face_right_duplicate"]["p11"]["other"] == "Rp10"
    assert set(by_rule["face_cross_duplicate"]) == {"p12"}
    assert by_rule["face_cross_duplicate"]["p12"] | {} == {
        "id": "p12", "rule": "face_cross_duplicate", "other": "Rp13", "distance": pytest.approx(0.2)}
    assert set(by_rule["face"]) == {"p08", "p09", "p10", "p11", "p12", "p13"}
    assert set(by_rule["one_face"]) == {"p08", "p09", "p11", "p12", "p13"}   # p10 has 2 faces


def test_subsets_from_rules(crafted):
    left, right, fl, fr = crafted
    params = S.SubsetParams(face_rule="distance")
    docs = S.build_subsets(IDS, S.near_duplicate_reasons(IDS, left, right, fl, fr, params),
                           params, ["generic/x", "face/dlib_hog"])
    assert docs["TLL_d"]["ids"] == ["p05", "p06", "p07", "p13"]
    assert docs["TLL_obj_strict"]["ids"] == ["p04", "p05", "p06", "p07"]
    assert docs["TLL_obj_notebook"]["ids"] == ["p04", "p05", "p06", "p07", "p10"]
    assert docs["TLL_obj"]["ids"] == docs["TLL_obj_notebook"]["ids"]
    dropped_d = {r["id"] for r in docs["TLL_d"]["dropped"]}
    assert dropped_d == set(IDS) - set(docs["TLL_d"]["ids"])
    assert all(r["rule"] in S.D_RULES for r in docs["TLL_d"]["dropped"])
    assert docs["TLL_d"]["face_rule"] == docs["TLL_d"]["params"]["face_rule"] == "distance"


def test_thresholds_are_parameters(crafted):
    left, right, fl, fr = crafted
    loose = S.SubsetParams(within_cosine=0.13, within_face=0.32, obj_definition="strict",
                           face_rule="distance")
    reasons = S.near_duplicate_reasons(IDS, left, right, fl, fr, loose)
    docs = S.build_subsets(IDS, reasons, loose, [])
    assert "p06" not in docs["TLL_d"]["ids"] and "p07" not in docs["TLL_d"]["ids"]
    # 0.35 > 0.32: the right-face pair is no longer a duplicate.
    assert {"p10", "p11"} <= set(docs["TLL_d"]["ids"])
    assert docs["TLL_obj"]["ids"] == docs["TLL_obj_strict"]["ids"] == ["p04", "p05"]
    strict = S.near_duplicate_reasons(IDS, left, right, fl, fr, S.SubsetParams(cross_cosine=0.0))
    assert not [r for r in strict if r["rule"] == "cross_duplicate"]
    with pytest.raises(S.SubsetError):
        S.obj_rules("loose")
    with pytest.raises(S.SubsetError, match="face rule"):
        S.d_rules("nearest")


def test_notebook_and_distance_face_rules_give_different_tll_d():
    """Six pairs worked out by hand. Faces (Euclidean): left p0 and left p3 are 0.3 apart
    (a duplicate by distance); p1 has no left face, p2 no face at all; the other faces are
    >= 1 apart, and p0's right face is far from every other right face.

    distance rule: p0 and p3 break face_left_duplicate -> TLL_d = p1, p2, p4, p5.
    notebook rule: argmin of each left row (faceless 10^9, then 100 on the diagonal): p0 -> 3,
    p1 -> 0 (faceless row), p2 -> 0, p3 -> 0 (its nearest face is p0's), p4 -> 5, p5 -> 4;
    right rows: p2 -> 0 (faceless), the rest point at their nearest face, never at p0's.
    Indices <= 0.4 are flagged: p1, p2, p3 -> TLL_d = p0, p4, p5. No left face is within
    0.4 of another pair's right face, so the cross-face term drops nothing here."""
    ids = [f"p{i}" for i in range(6)]
    left = np.array([unit(i) for i in range(6)])          # generic features: no duplicates
    right = np.array([unit(10 + i) for i in range(6)])
    lf = [[10 * unit(0)], [], [], [10 * unit(0) + 0.3 * unit(5)],
          [10 * unit(1)], [10 * unit(1) + 1.0 * unit(6)]]
    rf = [[30 * unit(20)], [10 * unit(11)], [], [10 * unit(13)], [10 * unit(14)],
          [10 * unit(15)]]
    reasons = S.near_duplicate_reasons(ids, left, right, faces(lf), faces(rf))
    argmin = {(r["rule"], r["id"]): r for r in reasons if r["rule"].endswith("_argmin")}
    assert set(argmin) == {("face_left_argmin", "p1"), ("face_left_argmin", "p2"),
                           ("face_left_argmin", "p3"), ("face_right_argmin", "p2")}
    assert argmin[("face_left_argmin", "p1")]["distance"] == S.NOTEBOOK_FACELESS
    assert argmin[("face_left_argmin", "p3")] | {} == {
        "id": "p3", "rule": "face_left_argmin", "other": "Lp0", "argmin": 0,
        "distance": pytest.approx(0.3)}
    by_rule = {}
    for fr_name in S.FACE_RULES:
        params = S.SubsetParams(face_rule=fr_name)
        by_rule[fr_name] = S.build_subsets(ids, reasons, params, [])
    assert by_rule["distance"]["TLL_d"]["ids"] == ["p1", "p2", "p4", "p5"]
    assert by_rule["notebook"]["TLL_d"]["ids"] == ["p0", "p4", "p5"]
    assert S.SubsetParams().face_rule == "notebook"      # the default: the paper's numbers
    for name, docs in by_rule.items():
        assert docs["TLL_d"]["face_rule"] == docs["TLL_d"]["params"]["face_rule"] == name
        assert docs["TLL_obj"]["ids"] == by_rule["distance"]["TLL_obj"]["ids"]  # unaffected
    assert {r["rule"] for r in by_rule["notebook"]["TLL_d"]["dropped"]} == {
        "face_left_argmin", "face_right_argmin"}


def test_notebook_rule_edges_faceless_pair_0_and_a_lone_face():
    """Four pairs by hand. Left faces: only e2 has one (a lone face on its side). Right
    faces: e1, e2, e3, far apart; e0 has no face at all.

    The notebook's matrices: faceless entries 10^9, then 100 on the diagonal. Left rows:
    e0 [1e9+100, 1e9, 1e9, 1e9] -> argmin 1 (not flagged); e1, e3 faceless -> argmin 0
    (flagged); e2 [1e9, 1e9, 100, 1e9] -> argmin 2, itself (not flagged). Right rows: e0
    faceless in row 0 -> argmin 1; e1, e2, e3 point at each other, never at 0. So the
    notebook's TLL_d is e0 and e2, although e0 has no face at all; the distance rule keeps
    all four (no face distance is <= 0.4)."""
    ids = ["e0", "e1", "e2", "e3"]
    left = np.array([unit(i) for i in range(4)])
    right = np.array([unit(10 + i) for i in range(4)])
    fl, fr = faces([[], [], [10 * unit(2)], []]), \
        faces([[], [10 * unit(21)], [10 * unit(22)], [10 * unit(23)]])
    idx, val = S.notebook_face_argmin(*fl)
    assert idx.tolist() == [1, 0, 2, 0]
    assert val.tolist() == [S.NOTEBOOK_FACELESS, S.NOTEBOOK_FACELESS, 100.0, S.NOTEBOOK_FACELESS]
    ridx, _ = S.notebook_face_argmin(*fr)
    assert ridx[0] == 1 and 0 not in ridx.tolist()
    reasons = S.near_duplicate_reasons(ids, left, right, fl, fr)
    flagged = {(r["rule"], r["id"]) for r in reasons if r["rule"].endswith("_argmin")}
    assert flagged == {("face_left_argmin", "e1"), ("face_left_argmin", "e3")}
    nb = S.build_subsets(ids, reasons, S.SubsetParams(), [])["TLL_d"]
    assert nb["ids"] == ["e0", "e2"]
    dist = S.build_subsets(ids, reasons, S.SubsetParams(face_rule="distance"), [])["TLL_d"]
    assert dist["ids"] == ids


def test_notebook_rule_cross_face_term_catches_what_argmin_misses():
    """Four pairs, one face a side each. c0's faces are far from everything (so no argmin
    points at index 0); left c1's face is 0.3 from right c3's face and >= 14 from every
    other face. Argmin rows: left 0->1, 1->2, 2->1, 3->1; right 0->1, 1->2, 2->1, 3->1:
    nothing is flagged. The cross-face term (left-to-right matrix + 100*eye, row minimum
    <= 0.4) drops c1, and only it: TLL_d = c0, c2, c3 under the notebook rule. The row
    minima are checked against numpy written out as the notebook wrote it."""
    ids = ["c0", "c1", "c2", "c3"]
    left = np.array([unit(i) for i in range(4)])
    right = np.array([unit(10 + i) for i in range(4)])
    lvec = [50 * unit(0), 10 * unit(1), 10 * unit(2), 10 * unit(3)]
    rvec = [50 * unit(20), 10 * unit(21), 10 * unit(22), 10 * unit(1) + 0.3 * unit(5)]
    fl, fr = faces([[v] for v in lvec]), faces([[v] for v in rvec])
    assert S.notebook_face_argmin(*fl)[0].tolist() == [1, 2, 1, 1]
    assert S.notebook_face_argmin(*fr)[0].tolist() == [1, 2, 1, 1]
    cross = np.array([[np.linalg.norm(a - b) for b in rvec] for a in lvec]) + 100 * np.eye(4)
    assert (cross.min(1) <= 0.4).tolist() == [False, True, False, False]
    reasons = S.near_duplicate_reasons(ids, left, right, fl, fr)
    hits = [r for r in reasons if r["rule"] in S.NOTEBOOK_FACE_RULES]
    assert hits == [{"id": "c1", "rule": "face_cross_duplicate", "other": "Rc3",
                     "distance": pytest.approx(0.3)}]
    docs = S.build_subsets(ids, reasons, S.SubsetParams(), [])
    assert docs["TLL_d"]["ids"] == ["c0", "c2", "c3"]
    assert "face_cross_duplicate" in docs["TLL_d"]["rules"]


def test_load_subset_by_name_and_file(tmp_path):
    ids = ["a", "b", "c", "d"]
    files.write_json(tmp_path / "subsets" / "TLL_d.json", {"name": "TLL_d", "ids": ["c", "a"]})
    assert S.load_subset(tmp_path, "TLL_d", ids) == ("TLL_d", ["a", "c"])
    assert S.load_subset(tmp_path, "all", ids) == ("all", ids)
    (tmp_path / "mine.txt").write_text("# my pairs\nd\nb\n")
    assert S.load_subset(tmp_path, str(tmp_path / "mine.txt"), ids) == ("mine", ["b", "d"])
    (tmp_path / "list.json").write_text(json.dumps(["b"]))
    assert S.load_subset(tmp_path, str(tmp_path / "list.json"), ids)[1] == ["b"]
    (tmp_path / "bad.json").write_text(json.dumps(["b", "zz"]))
    with pytest.raises(S.SubsetError, match="zz"):
        S.load_subset(tmp_path, str(tmp_path / "bad.json"), ids)
    with pytest.raises(S.SubsetError, match="experiments subsets"):
        S.load_subset(tmp_path, "TLL_obj", ids)
    with pytest.raises(S.SubsetError, match="unknown subset"):
        S.load_subset(tmp_path, "nope", ids)
