"""Retrieval maths on hand-built and random arrays (no store needed)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from experiments import retrieval as R


def matrix_block(d):
    d = np.asarray(d, dtype=float)
    return lambda rows: d[rows]


def test_ranks_on_hand_built_matrix():
    # row 0: own (col 0) is nearest; row 1: two strictly closer; row 2: one closer.
    d = [[0.1, 0.5, 0.9],
         [0.2, 0.8, 0.3],
         [0.4, 0.1, 0.7]]
    ranks = R.true_match_ranks(matrix_block(d), 3, ties="mean")
    assert ranks.tolist() == [1, 3, 3]
    assert R.recall_at_k(ranks, [1, 2, 3]) == {1: pytest.approx(1 / 3), 2: pytest.approx(1 / 3),
                                               3: pytest.approx(1.0)}


def test_each_tie_rule():
    # own distance 0.5 ties with two others; one strictly closer.
    d = [[0.5, 0.5, 0.2, 0.5, 0.9]] + [[0.0] * 5] * 4
    block = matrix_block(d)
    assert R.true_match_ranks(block, 5, "optimistic")[0] == 2
    assert R.true_match_ranks(block, 5, "pessimistic")[0] == 4
    assert R.true_match_ranks(block, 5, "mean")[0] == 3
    with pytest.raises(ValueError):
        R.true_match_ranks(block, 5, "random")


def test_chunked_equals_argsort_reference():
    rng = np.random.default_rng(1)
    left = rng.normal(size=(300, 16)).astype(np.float32)
    right = left + rng.normal(scale=1.5, size=left.shape).astype(np.float32)
    for metric in ("cosine", "euclidean"):
        d = cdist(left.astype(float), right.astype(float), metric)
        ref = np.array([np.where(np.argsort(d[i], kind="stable") == i)[0][0] + 1
                        for i in range(len(d))])
        for chunk in (7, 64, 1000):
            got = R.feature_ranks(left, right, metric, "optimistic", chunk=chunk)
            assert np.array_equal(got, ref), (metric, chunk)
        for k in (1, 5, 10, 50):
            assert R.recall_at_k(got, [k])[k] == pytest.approx(np.mean(ref <= k))
        curve = R.recall_curve(got)
        assert curve[-1] == pytest.approx(1.0)
        assert all(curve[k - 1] == pytest.approx(np.mean(ref <= k)) for k in (1, 3, 17, 300))


def test_matmul_distances_match_cdist():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(20, 8)), rng.normal(size=(30, 8))
    assert np.allclose(R.cosine_distances(a, b), cdist(a, b, "cosine"))
    assert np.allclose(R.euclidean_distances(a, b), cdist(a, b, "euclidean"))
    assert np.allclose(R.generic_block(a, b, "euclidean")(np.arange(5, 9)),
                       cdist(a[5:9], b, "euclidean"))


def test_cosine_equals_euclidean_on_unit_vectors():
    rng = np.random.default_rng(3)
    left = R.unit_rows(rng.normal(size=(200, 12)))
    right = R.unit_rows(left + rng.normal(scale=0.8, size=left.shape))
    cos = R.feature_ranks(left, right, "cosine")
    euc = R.feature_ranks(left, right, "euclidean")
    assert np.array_equal(cos, euc)
    assert np.allclose(R.cosine_minus_euclidean_curve(left, right), 0)
    # Without normalisation the two differ (scaled rows change Euclidean, not cosine).
    scaled = right * rng.uniform(0.1, 10, size=(200, 1))
    assert np.array_equal(R.feature_ranks(left, scaled, "cosine"), cos)
    assert not np.array_equal(R.feature_ranks(left, scaled, "euclidean"), euc)


def test_face_set_minimum_and_infinity():
    # left: image 0 has two faces, image 1 none, image 2 one face.
    lv = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0]])
    lo = np.array([0, 2, 2, 3])
    # right: image 0 one face, image 1 two faces, image 2 none.
    rv = np.array([[9.0, 0.0], [0.0, 4.0], [100.0, 100.0]])
    ro = np.array([0, 1, 3, 3])
    d = R.face_set_distances(lv, lo, rv, ro)
    assert d[0, 0] == pytest.approx(1.0)          # min over (10,0)-(9,0)
    assert d[0, 1] == pytest.approx(4.0)          # (0,0)-(0,4)
    assert d[2, 1] == pytest.approx(1.0)          # (0,5)-(0,4)
    assert np.isinf(d[1]).all() and np.isinf(d[:, 2]).all()
    blk = R.face_block(lv, lo, rv, ro)
    assert np.array_equal(blk(np.array([2, 0])), d[[2, 0]])
    ranks = R.true_match_ranks(blk, 3, "pessimistic")
    assert ranks[0] == 1                          # 1.0 vs 4.0, inf
    assert ranks[2] == 3                          # own is inf: ties with all the infs
    assert R.set_distance(lv[:2], rv[:1], "euclidean") == pytest.approx(1.0)
    assert R.set_distance(lv[:0], rv, "euclidean") == np.inf


def test_select_faces():
    v = np.arange(10, dtype=float).reshape(5, 2)
    o = np.array([0, 2, 2, 5])
    sv, so = R.select_faces(v, o, [2, 1, 0])
    assert so.tolist() == [0, 3, 3, 5]
    assert sv.tolist() == v[[2, 3, 4, 0, 1]].tolist()


def test_associative_recall():
    rng = np.random.default_rng(4)
    left = rng.normal(size=(120, 8))
    right = left + rng.normal(scale=2.0, size=left.shape)
    blk = R.generic_block(left, right)
    res = R.associative_recall(blk, 120, ms=[1, 2, 5, 20, 500], repetitions=3, seed=0)
    assert set(res) == {1, 2, 5, 20}
    assert res[1] == 1.0
    assert res[2] >= res[5] >= res[20]
    assert res == R.associative_recall(blk, 120, ms=[1, 2, 5, 20], repetitions=3, seed=0)
    # m = N with one repetition is recall@1 (the set is everything).
    full = R.associative_recall(blk, 120, ms=[120], repetitions=1, seed=5, ties="optimistic")
    assert full[120] == pytest.approx(R.recall_at_k(R.true_match_ranks(blk, 120, "optimistic"), [1])[1])
    # Perfect features: everything correct for every m.
    perfect = R.generic_block(left, left)
    assert set(R.associative_recall(perfect, 120, ms=[2, 10], repetitions=2).values()) == {1.0}


def test_nearest_other_and_pair_distances():
    d = np.array([[0.0, 0.3, 0.2], [0.5, 0.0, 0.9], [0.1, 0.4, 0.0]])
    idx, dist = R.nearest_other(matrix_block(d), 3)
    assert idx.tolist() == [2, 0, 0] and dist.tolist() == [0.2, 0.5, 0.1]
    assert R.pair_distances(matrix_block(d), 3).tolist() == [0, 0, 0]


def test_votes_correlation():
    rng = np.random.default_rng(5)
    dist = rng.uniform(size=50)
    up = 100 - 80 * dist + rng.normal(size=50)
    down = rng.integers(0, 5, size=50)
    res = R.votes_correlation(up, down, dist)
    assert res["n"] == 50
    assert res["up"]["pearson_r"] < -0.9 and res["up"]["pearson_p"] < 1e-6
    assert res["up"]["spearman_r"] < -0.9
    assert abs(res["down"]["pearson_r"]) < 0.5
    inf_dist = dist.copy()
    inf_dist[:10] = np.inf
    assert R.votes_correlation(up, down, inf_dist)["n"] == 40


def test_evaluation_tables_and_files(tmp_path):
    """evaluate's tables and files from synthetic feature sets (no store)."""
    from types import SimpleNamespace

    from experiments.evaluate import evaluate_feature_sets, write_evaluation

    rng = np.random.default_rng(6)
    n = 40
    ids = [f"{i:03d}" for i in range(n)]
    left = rng.normal(size=(n, 8))
    generic = SimpleNamespace(key="generic/toy", kind="generic", ids=ids, left=left,
                              right=left + rng.normal(scale=0.5, size=left.shape))
    offs = np.arange(n + 1)
    offs[21:] = 20                                   # images 20.. have no face
    fv = rng.normal(size=(20, 4))
    face = SimpleNamespace(key="face/dlib_hog", kind="face", ids=ids,
                           left=SimpleNamespace(vectors=fv, offsets=offs),
                           right=SimpleNamespace(vectors=fv + 0.01, offsets=offs))
    votes = {pid: {"up": int(i), "down": 1 + i % 3} for i, pid in enumerate(ids)}
    ev = evaluate_feature_sets({"face/dlib_hog": face, "generic/toy": generic}, ids, votes,
                               repetitions=2, subset="all")
    t1 = ev.table1.set_index("feature_set")
    assert list(t1.index) == ["toy", "face/dlib_hog"]
    ranks = R.feature_ranks(generic.left, generic.right, "cosine")
    assert t1.loc["toy", "R@5"] == round(100 * np.mean(ranks <= 5), 2)
    # Faces: the 20 pairs with a face match exactly; the others tie at +inf. Face rows
    # `faces` (the default) count the 20; `subset` all 40.
    assert t1.loc["face/dlib_hog", "R@1"] == 100.0
    assert t1.loc["face/dlib_hog", "queries"] == t1.loc["face/dlib_hog", "pairs_with_feature"] == 20
    assert t1.loc["face/dlib_hog", "face_denominator"] == "faces"
    assert t1.loc["toy", "queries"] == 40 and t1.loc["toy", "face_denominator"] == "subset"
    whole = evaluate_feature_sets({"face/dlib_hog": face}, ids, None, face_denominator="subset",
                                  face_rule="distance").table1.iloc[0]
    assert whole["R@1"] == 50.0 and whole["queries"] == 40
    assert whole["face_rule"] == "distance" and whole["face_denominator"] == "subset"
    t2 = ev.table2a.set_index("feature_set")
    assert t2.loc["face/dlib_hog", "m=5"] == 100.0 and t2.loc["face/dlib_hog", "method"] == "exact"
    assert (ev.table2a["m=1"] == 100.0).all()
    assert ev.votes is not None and set(ev.votes["feature_set"]) == {"toy", "face/dlib_hog"}
    assert ev.votes.set_index("feature_set").loc["face/dlib_hog", "n"] == 20
    files = write_evaluation(ev, tmp_path / "ev")
    names = {f.name for f in files}
    assert {"table1.csv", "table1.md", "table2a.csv", "index.html", "recall_curves.png",
            "recall_zoom.png", "cosine_minus_euclidean.png", "votes.csv"} <= names
    assert (tmp_path / "ev" / "recall_curves.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "ev" / "index.html").read_text()
    assert "recall_zoom.png" in page and "R@100" in page
    ev2 = evaluate_feature_sets({"generic/toy": generic}, ids, None, repetitions=1)
    write_evaluation(ev2, tmp_path / "ev2")
    assert "No votes" in (tmp_path / "ev2" / "votes.md").read_text()


def test_generic_match_stats_is_one_pass_for_both_metrics():
    rng = np.random.default_rng(8)
    left = rng.normal(size=(70, 6)).astype(np.float32)
    right = left + rng.normal(scale=1.5, size=left.shape).astype(np.float32)
    stats = R.generic_match_stats(left, right, chunk=16)
    for metric in ("cosine", "euclidean"):
        closer, ties, own = stats[metric]
        ref = R.feature_ranks(left, right, metric, "pessimistic", chunk=7)
        assert (closer + 1 + ties).tolist() == ref.tolist()
        assert own == pytest.approx(R.pair_distances(R.generic_block(left, right, metric), 70),
                                    abs=1e-4)


def brute_force_associative(closer, ties, n, m, rule):
    """Average over EVERY (m-1)-subset of the n-1 others: the definition itself."""
    from itertools import combinations

    out = []
    for k, t in zip(closer, ties):
        kinds = ["c"] * k + ["t"] * t + ["f"] * (n - 1 - k - t)
        vals = []
        for pick in combinations(range(n - 1), m - 1):
            got = [kinds[j] for j in pick]
            if "c" in got:
                vals.append(0.0)
            elif rule == "optimistic":
                vals.append(1.0)
            elif rule == "pessimistic":
                vals.append(float("t" not in got))
            else:
                vals.append(1.0 / (1 + got.count("t")))
        out.append(np.mean(vals))
    return np.array(out)


@pytest.mark.parametrize("rule", ["optimistic", "pessimistic", "mean"])
def test_exact_associative_recall_is_the_closed_form_of_the_definition(rule):
    closer = np.array([0, 0, 1, 3, 2, 0, 5, 0])
    ties = np.array([0, 2, 0, 1, 4, 7, 0, 3])
    n = 9
    exact = R.associative_recall_exact(closer, ties, n, ms=[1, 2, 3, 5, 9, 10], rule=rule)
    assert set(exact) == {1, 2, 3, 5, 9}
    for m in (2, 3, 5, 9):
        assert exact[m] == pytest.approx(brute_force_associative(closer, ties, n, m, rule), abs=1e-12)
    assert (exact[1] == 1).all()
    # n = 100,000 in logs: C(n-1-k, 1) / C(n-1, 1) = (n-1-k)/(n-1)
    big = R.associative_recall_exact(np.array([0, 99, 50_000]), np.zeros(3), 100_000, ms=[2, 50])
    assert big[2] == pytest.approx([1.0, (99_999 - 99) / 99_999, (99_999 - 50_000) / 99_999])
    assert 0 < big[50][2] < 1e-14 and big[50][0] == 1.0


def test_exact_and_sampled_associative_recall_agree_within_sampling_error():
    """The notebook's sampling, repeated many times, lands within a few standard errors of
    the exact expectation, for every m and both with and without ties."""
    rng = np.random.default_rng(9)
    n = 60
    left = rng.normal(size=(n, 5))
    right = left + rng.normal(scale=1.2, size=left.shape)
    dist = np.round(R.cosine_distances(left, right), 1)       # coarse: many ties
    blk = matrix_block(dist)
    closer, ties, _ = R.match_stats(blk, n)
    assert ties.sum() > 100
    ms = [2, 3, 5, 10, 20]
    reps = 400
    for rule in ("mean", "optimistic"):
        exact = R.associative_recall_exact(closer, ties, n, ms, rule)
        runs = np.array([[R.associative_recall(blk, n, ms, repetitions=1, seed=s, ties=rule)[m]
                          for m in ms] for s in range(reps)])
        mean, se = runs.mean(0), runs.std(0, ddof=1) / np.sqrt(reps)
        for j, m in enumerate(ms):
            assert abs(mean[j] - exact[m].mean()) < 4 * se[j] + 1e-12, (rule, m)
    # the query mask: the sampled share over a subset of the queries
    mask = np.arange(n) < 20
    sampled = R.associative_recall(blk, n, [5], repetitions=300, seed=1, queries=mask)[5]
    assert sampled == pytest.approx(R.associative_recall_exact(closer, ties, n, [5])[5][mask].mean(),
                                    abs=0.03)


def test_torch_distance_path_equals_numpy_and_device_choice():
    """The GPU path's formulas, run by torch on the CPU here (no GPU on this machine),
    give the same counts as numpy; auto stays on the CPU for small features or without
    a GPU, and cuda without a GPU is a clear error."""
    from experiments import distance_sources as ds

    rng = np.random.default_rng(10)
    left = rng.normal(size=(90, 12)).astype(np.float32)
    right = left + rng.normal(scale=1.0, size=left.shape).astype(np.float32)
    a = R.generic_match_stats(left, right, chunk=32)
    b = ds.torch_generic_stats(left, right, device="cpu", chunk=25)
    for metric in ("cosine", "euclidean"):
        assert a[metric][0].tolist() == b[metric][0].tolist()
        assert a[metric][2] == pytest.approx(b[metric][2], abs=1e-4)
    assert ds.resolve_retrieval_device("auto", 100, 12) == "cpu"
    assert ds.resolve_retrieval_device("cpu", 10**6, 4096) == "cpu"
    import torch
    if not torch.cuda.is_available():
        assert ds.resolve_retrieval_device("auto", 10**5, 1024) == "cpu"
        with pytest.raises(ds.FeatureAccessError, match="no CUDA GPU"):
            ds.resolve_retrieval_device("cuda", 10, 10)


def test_notebook_face_rows_reproduce_cell_53():
    """Face rows `notebook`: the pairs of the WHOLE set with a face on both sides, ranked
    among all its right images, printed as cell 53 printed them (recall at 2, 6, 11, 21
    under the labels 1, 5, 10, 20), whatever the subset. Six pairs by hand, one face per
    image except p5's right image: left pi's face is 10 e_i; right faces p0 10e0 + 3e6,
    p1 10e0 + 2e7, p2..p4 10e_i. Distances from left p0: right p1 2, own 3, others 14.1:
    rank 2. Left p1: p2..p4 14.14 < own 14.28: rank 4. p2..p4: rank 1. Whole set: five
    queries (p5 has no right face), ranks 2, 4, 1, 1, 1: recall@1 60 %, recall@2 80 %."""
    from types import SimpleNamespace

    from experiments.evaluate import evaluate_feature_sets

    ids = [f"p{i}" for i in range(6)]
    e = np.eye(8)
    lv = np.array([10 * e[i] for i in range(6)])
    rv = np.array([10 * e[0] + 3 * e[6], 10 * e[0] + 2 * e[7], 10 * e[2], 10 * e[3], 10 * e[4]])
    lo = np.arange(7)
    ro = np.array([0, 1, 2, 3, 4, 5, 5])
    face = SimpleNamespace(key="face/dlib_hog", kind="face", ids=ids,
                           left=SimpleNamespace(vectors=lv, offsets=lo),
                           right=SimpleNamespace(vectors=rv, offsets=ro))
    # subset p0, p1, p5 under `faces`: p0 ranks 2nd (behind p1's right), p1 1st (14.28
    # against 14.46 and +inf)
    sub = ["p0", "p1", "p5"]
    faces_row = evaluate_feature_sets({"face/dlib_hog": face}, sub, None).table1.iloc[0]
    assert faces_row["queries"] == 2 and faces_row["R@1"] == 50.0
    nb = evaluate_feature_sets({"face/dlib_hog": face}, sub, None, face_denominator="notebook",
                               all_ids=ids)
    row = nb.table1.iloc[0]
    assert row["N"] == 6 and row["queries"] == 5 and row["recall_at"] == "2,6,11,21"
    assert row["R@1"] == 80.0 and row["R@5"] == 100.0 and np.isnan(row["R@50"])
    assert row["face_denominator"] == "notebook"
    assert nb.table2a.iloc[0]["face_denominator"] == "notebook"
    assert list(nb.ranks["pair"]) == sub                    # ranks stay on the subset
    with pytest.raises(ValueError, match="all_ids"):
        evaluate_feature_sets({"face/dlib_hog": face}, sub, None, face_denominator="notebook")
