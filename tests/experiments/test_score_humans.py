"""`score-humans`: feature sets scored against people's answers.

The synthetic study is built so that the answer is known in advance: people choose with
the probabilities of a softmax of one feature set's distances at temperature T0, so that
feature set must rank first and its fitted temperature must come back near T0; a noisy
copy ranks second; shuffled and reversed distances do no better than chance."""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from experiments import score_humans as sh
from experiments.experiment_file import make_document, write_experiment
from experiments.store import CacheEntry, write_feature_set
from tests.conftest import ROOT, run_cli

T0 = 0.1             # the people's temperature
N_TRIALS = 150
PER_TRIAL = 30       # answers per trial
TEMPERATURE_TOLERANCE = 0.10   # relative: |T_fit / T0 - 1| below this
NO_FACE_QUERIES = 3  # trials whose query has no face in the face set
NO_FACE_CANDIDATES = 2


# --------------------------------------------------------------------------- pure maths
def _softmax(d, t):
    e = np.exp(-d / t)
    return e / e.sum(axis=1, keepdims=True)


def test_fit_recovers_the_temperature_of_expected_counts():
    rng = np.random.default_rng(1)
    d = rng.uniform(0, 0.6, (40, 5))
    counts = 1000 * _softmax(d, 0.07)   # expected counts: the MLE is exactly T = 0.07
    assert sh.fit_temperature(d, counts) == pytest.approx(0.07, rel=1e-4)
    # Scaling the distances scales the temperature.
    assert sh.fit_temperature(3 * d, counts) == pytest.approx(0.21, rel=1e-4)
    # No spread at all: every temperature gives the uniform distribution.
    assert math.isnan(sh.fit_temperature(np.ones((4, 5)), np.ones((4, 5))))


def test_baselines_and_agreement_by_hand():
    counts = np.array([[3, 1, 0, 0, 0], [0, 2, 2, 0, 0]])
    true = np.array([0, 1])
    base = sh.baseline_log_likelihoods(counts, true, epsilon=0.2)
    assert base["uniform"] == pytest.approx(8 * math.log(0.2))
    assert base["true_match"] == pytest.approx(5 * math.log(0.8) + 3 * math.log(0.05))
    d = np.array([[0.1, 0.5, 0.5, 0.5, 0.5], [0.9, 0.9, 0.1, 0.9, 0.9]])
    # Trial 1: nearest = position 0 = majority = true. Trial 2: nearest = position 2, tied
    # for most chosen with position 1 (half credit), not the true match.
    assert sh.nearest_agreement(d, counts, true) == (pytest.approx(0.75), 0.5)
    rho = sh.rank_correlations(d, counts)
    assert rho[0] > 0.7 and rho[1] > 0
    assert np.isnan(sh.rank_correlations(d, np.ones((2, 5)))).all()


def test_folds_are_seeded_and_balanced():
    f = sh.fold_of_trials(23, 5, seed=3)
    assert sorted(np.bincount(f)) == [4, 4, 5, 5, 5]
    assert (f == sh.fold_of_trials(23, 5, seed=3)).all()
    assert len(set(sh.fold_of_trials(3, 5))) == 3


# --------------------------------------------------------------------------- a study
def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _at_cosine_distance(u, d, rng):
    """A unit vector whose cosine distance to unit vector u is d."""
    w = _unit(rng.normal(size=u.shape))
    w = _unit(w - (w @ u) * u)
    theta = np.arccos(1 - d)
    return np.cos(theta) * u + np.sin(theta) * w


def _write_set(study, kind, name, left, right, ids):
    """Write a feature set in the store's format: generic arrays, or for the face kind
    lists of per-image arrays (0 rows: no face)."""
    folder = study / "features" / kind / name
    if kind == "generic":
        sides = {s: [CacheEntry(v[None, :]) for v in arr] for s, arr in (("left", left), ("right", right))}
    else:
        sides = {s: [CacheEntry(v, np.zeros((len(v), 4), np.int32)) for v in arr]
                 for s, arr in (("left", left), ("right", right))}
    write_feature_set(folder, {"key": f"{kind}/{name}", "kind": kind, "name": name,
                               "dim": 3, "ids": ids}, sides)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A study (feature store, experiment file, answers export) whose ranking is known."""
    rng = np.random.default_rng(2026)
    root = tmp_path_factory.mktemp("humans")
    study = root / "study"
    n_pairs = 5 * N_TRIALS
    ids = [f"{i:05d}" for i in range(n_pairs)]
    d = rng.uniform(0.0, 0.6, (N_TRIALS, 5))          # the people's distances, by display position
    true_index = rng.integers(0, 5, N_TRIALS)
    # Trial t's query is the left image of pair 5t; its candidates are the right images of
    # pairs 5t..5t+4, pair 5t (its own) at display position true_index[t].
    cands = []
    for t in range(N_TRIALS):
        others = [5 * t + k for k in range(1, 5)]
        order = others[:true_index[t]] + [5 * t] + others[true_index[t]:]
        cands.append(order)

    def vectors(dist):
        left = _unit(rng.normal(size=(n_pairs, 3)))
        right = _unit(rng.normal(size=(n_pairs, 3)))
        for t in range(N_TRIALS):
            for j, p in enumerate(cands[t]):
                right[p] = _at_cosine_distance(left[5 * t], dist[t, j], rng)
        return left.astype(np.float32), right.astype(np.float32)

    noisy = np.clip(d + rng.normal(0, 0.12, d.shape), 0, 1.9)
    shuffled = rng.permuted(d, axis=1)
    exact_l, exact_r = vectors(d)
    for name, dist in (("noisy", noisy), ("shuffled", shuffled), ("reversed", 0.6 - d)):
        _write_set(study, "generic", name, *vectors(dist), ids)
    _write_set(study, "generic", "exact", exact_l, exact_r, ids)
    # A face set with the exact geometry, where some images have no face.
    fl = [v[None, :] for v in exact_l]
    fr = [v[None, :] for v in exact_r]
    for t in range(NO_FACE_QUERIES):
        fl[5 * t] = np.zeros((0, 3), np.float32)
    for t in range(10, 10 + NO_FACE_CANDIDATES):
        fr[cands[t][(true_index[t] + 1) % 5]] = np.zeros((0, 3), np.float32)
    _write_set(study, "face", "dlib_hog", fl, fr, ids)

    images = [{"id": f"{s[0].upper()}{p}", "path": f"images/{s}/{p}.jpg", "sha256": "0" * 64,
               "pair": p, "side": s} for p in ids for s in ("left", "right")]
    trials = [{"id": f"t{t + 1:04d}", "condition": "random", "subset": "all",
               "pair": ids[5 * t], "query": f"L{ids[5 * t]}",
               "candidates": [f"R{ids[p]}" for p in cands[t]], "true_index": int(true_index[t]),
               "catch": False, "feature_set": None, "machine_choices": {}}
              for t in range(N_TRIALS)]
    trials.append({"id": "t9999", "condition": "catch", "subset": "all", "pair": ids[0],
                   "query": f"L{ids[0]}", "candidates": [f"L{ids[0]}"] + [f"R{ids[p]}" for p in (1, 2, 3, 4)],
                   "true_index": 0, "catch": True, "feature_set": None, "machine_choices": {}})
    doc = make_document(seed=0, image_root="study", manifest_sha256="x", design={"name": "synthetic"},
                        feature_sets=[], images=images, trials=trials,
                        hits=[{"id": "h0001", "trials": [t["id"] for t in trials]}])
    exp = write_experiment(root / "synthetic.json", doc)

    probs = _softmax(d, T0)
    rows = []
    for t in range(N_TRIALS):
        counts = rng.multinomial(PER_TRIAL, probs[t])
        for pos, c in enumerate(counts):
            rows += [{"trial": f"t{t + 1:04d}", "chosen_position": pos + 1, "catch": 0}] * int(c)
    # A catch trial whose answers must not count, and one unanswered trial.
    rows += [{"trial": "t9999", "chosen_position": 2, "catch": 1}] * 5
    rows = [r for r in rows if r["trial"] != f"t{N_TRIALS:04d}"]
    by_id = {tr["id"]: tr for tr in trials}
    df = pd.DataFrame(rows)
    df["participant"] = [f"p{i % PER_TRIAL:03d}" for i in range(len(df))]
    df["experiment"], df["population"], df["condition"], df["subset"] = "syn", "lab", "random", "all"
    df["pair"] = "x"
    df["true_position"] = [by_id[t]["true_index"] + 1 for t in df["trial"]]
    df["correct"] = (df["chosen_position"] == df["true_position"]).astype(int)
    df["rt_ms"] = 900.0
    answers = root / "answers.csv"
    df.to_csv(answers, index=False)
    return {"root": root, "study": study, "experiment": exp, "answers": answers, "doc": doc, "d": d,
            "true_index": true_index}


def test_exact_feature_set_ranks_first_and_recovers_the_temperature(synthetic, tmp_path,
                                                                     artifacts_dir):
    out = tmp_path / "scores"
    proc = run_cli("experiments", "score-humans", str(synthetic["study"]), "--experiment",
                   str(synthetic["experiment"]), "--answers", str(synthetic["answers"]),
                   "--out", str(out))
    assert "1. generic/exact" in proc.stdout
    table = pd.read_csv(out / "scores.csv").set_index("feature_set")
    order = list(table.sort_values("rank").index)
    # The face set has the exact ranking of the candidates (Euclidean on unit vectors is
    # sqrt(2 d)) and beats the noisy copy too; shuffled and reversed are no better than
    # chance, the exact set clearly is.
    assert order[0] == "generic/exact", order
    assert order.index("generic/noisy") < min(order.index("generic/shuffled"),
                                              order.index("generic/reversed")), order
    exact = table.loc["generic/exact"]
    assert abs(exact["temperature"] / T0 - 1) < TEMPERATURE_TOLERANCE, exact["temperature"]
    uniform = -math.log(5)
    assert exact["loglik_uniform"] == pytest.approx(uniform)
    assert exact["loglik_heldout"] > uniform + 0.1
    assert exact["loglik_fitted"] >= exact["loglik_heldout"]
    for key in ("generic/shuffled", "generic/reversed"):
        assert table.loc[key, "loglik_heldout"] < uniform + 0.02
    assert table.loc["generic/reversed", "rank_corr"] < 0 < exact["rank_corr"]
    # Every ordinary trial but the unanswered last one; the catch trial's answers left out.
    assert exact["trials"] == N_TRIALS - 1 and exact["answers"] == (N_TRIALS - 1) * PER_TRIAL
    assert "1 ordinary trial(s) of the experiment have no counted answers" in proc.stdout
    # Nearest-candidate shares against a count by hand from the same answers.
    per = pd.read_csv(out / "per_trial.csv")
    counts = per[[f"count_{p}" for p in range(1, 6)]].to_numpy()
    d = synthetic["d"][:N_TRIALS - 1]
    nearest = d.argmin(axis=1)
    top = counts == counts.max(axis=1, keepdims=True)
    want = (top[np.arange(len(d)), nearest] / top.sum(axis=1)).mean()
    assert exact["nearest_is_majority"] == pytest.approx(want)
    assert exact["nearest_is_true"] == pytest.approx(
        (nearest == synthetic["true_index"][:N_TRIALS - 1]).mean())
    for name in ("scores.md", "score_humans.png", "score_humans.svg", "index.html"):
        assert (out / name).stat().st_size > 0
    (artifacts_dir / "score_humans_synthetic.png").write_bytes((out / "score_humans.png").read_bytes())


def test_missing_faces_are_counted_and_listed(synthetic, tmp_path):
    out = tmp_path / "faces"
    run_cli("experiments", "score-humans", str(synthetic["study"]), "--experiment",
            str(synthetic["experiment"]), "--answers", str(synthetic["answers"]),
            "--feature-set", "face/dlib_hog", "--feature-set", "generic/exact", "--out", str(out))
    table = pd.read_csv(out / "scores.csv").set_index("feature_set")
    assert sorted(table.index) == ["face/dlib_hog", "generic/exact"]
    face = table.loc["face/dlib_hog"]
    assert face["trials_without_query_feature"] == NO_FACE_QUERIES
    assert face["trials_without_candidate_feature"] == NO_FACE_CANDIDATES
    assert face["trials"] == N_TRIALS - 1 - NO_FACE_QUERIES - NO_FACE_CANDIDATES
    assert table.loc["generic/exact", "trials_without_query_feature"] == 0
    missing = pd.read_csv(out / "missing.csv")
    assert (missing["feature_set"] == "face/dlib_hog").all()
    assert sorted(missing["role"]) == ["candidate"] * NO_FACE_CANDIDATES + ["query"] * NO_FACE_QUERIES
    assert sorted(missing.loc[missing["role"] == "query", "trial"]) == ["t0001", "t0002", "t0003"]
    # The exact ranking of the candidates on its scored trials: far better than chance.
    assert face["loglik_heldout"] > face["loglik_uniform"] + 0.1
    # Both ranked on the trials both score: the face set's own
    assert (table["common_trials"] == face["trials"]).all()
    assert table.loc["generic/exact", "trials"] > face["trials"]
    html = (out / "index.html").read_text()
    assert "Images without features" in html and "face/dlib_hog" in html


def test_scoring_imports_neither_the_server_nor_torch(synthetic, tmp_path):
    import subprocess
    import sys
    code = ("import sys; from experiments.score_humans import score_study; "
            f"score_study({str(synthetic['study'])!r}, {str(synthetic['experiment'])!r}, "
            f"{str(synthetic['answers'])!r}, ['generic/exact'], {str(tmp_path / 'o')!r}); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('server', 'torch', 'flask')); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(synthetic["root"]), capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "o" / "scores.csv").is_file()


@pytest.mark.parametrize("change, message", [
    ({"feature_set": "generic/nope"}, "feature set 'generic/nope' is not in the store"),
    ({"answers": "missing.csv"}, "CSV file not found"),
    ({"true_shift": 1}, "have another true match in the answers than in the experiment file"),
    ({"unknown_trial": True}, "not ordinary trials of the experiment file"),
    ({"folds": "1"}, "--folds must be 2 or more"),
    ({"experiment": "bad.json"}, "cannot read experiment file"),
])
def test_bad_input_is_one_clear_line(synthetic, tmp_path, change, message):
    answers = synthetic["answers"]
    if "true_shift" in change or "unknown_trial" in change:
        df = pd.read_csv(answers)
        if "true_shift" in change:
            df["true_position"] = df["true_position"] % 5 + 1
        else:
            df.loc[0, "trial"] = "t7777"
        answers = tmp_path / "other.csv"
        df.to_csv(answers, index=False)
    if "answers" in change:
        answers = tmp_path / change["answers"]
    experiment = synthetic["experiment"]
    if "experiment" in change:
        experiment = tmp_path / change["experiment"]
        experiment.write_text("{not json")
    args = ["experiments", "score-humans", str(synthetic["study"]), "--experiment",
            str(experiment), "--answers", str(answers), "--out", str(tmp_path / "o")]
    if "feature_set" in change:
        args += ["--feature-set", change["feature_set"]]
    if "folds" in change:
        args += ["--folds", change["folds"]]
    proc = run_cli(*args, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- the demo
PW = "score-humans-pw-1"


def _serve(app):
    """Serve `app` over HTTP on 127.0.0.1 from a thread; return (url, stop)."""
    import threading

    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()

    def stop():
        srv.shutdown()
        thread.join(timeout=10)
    return f"http://127.0.0.1:{srv.server_port}", stop


@pytest.mark.browser
def test_demo_with_simulated_participants(demo_study, copy_study, tmp_path, page, artifacts_dir):
    """The demo experiment, 20 simulated participants answering through the real server,
    the server's CSV export, then score-humans ranks the demo's three feature sets."""
    import base64
    import urllib.request

    from experiments.demo import DEMO_SEED, largest_paper_design
    from experiments.experiment_file import write_experiment
    from experiments.store import FeatureStore
    from experiments.subsets import SubsetParams, compute_subsets
    from server.loader import load_experiment
    from server.manage import set_password
    from tests.analysis.conftest import server_helpers

    work = copy_study(demo_study)
    exp = work / "experiments" / "demo.json"
    compute_subsets(work, SubsetParams())
    _, doc = largest_paper_design(work, DEMO_SEED, exp)     # what `make demo` builds
    write_experiment(exp, doc)
    store = FeatureStore(work)

    app = server_helpers().make_app(tmp_path)
    with app.app_context():
        load_experiment(exp, name="demo", settings={"practice": False})
        set_password(PW)
    url, stop = _serve(app)
    try:
        sim = run_cli("analysis", "simulate", "--server", url, "--experiment", "demo",
                      "--participants", "20", "--accuracy", "0.75", "--position-bias",
                      "3,2,2,1,1", "--seed", "7", "--admin-password", PW)
        assert "20 simulated participants" in sim.stdout
        req = urllib.request.Request(f"{url}/manage/experiments/demo/answers.csv")
        req.add_header("Authorization", "Basic " + base64.b64encode(f"admin:{PW}".encode()).decode())
        with urllib.request.urlopen(req, timeout=60) as r:
            (tmp_path / "answers.csv").write_bytes(r.read())
    finally:
        stop()
        with app.app_context():
            from server.models import db
            db.engine.dispose()

    out = tmp_path / "humans"
    proc = run_cli("experiments", "score-humans", str(work), "--experiment", str(exp),
                   "--answers", str(tmp_path / "answers.csv"), "--out", str(out))
    ordinary = [t for t in doc["trials"] if not t["catch"]]
    table = pd.read_csv(out / "scores.csv").set_index("feature_set")
    assert sorted(table.index) == sorted(store.keys())
    assert sorted(table["rank"]) == [1, 2, 3]
    assert f"{20 * len(ordinary)} answers to {len(ordinary)} trials" in proc.stdout
    for key, row in table.iterrows():
        # Every ordinary trial is either scored or counted as missing a feature.
        assert (row["trials"] + row["trials_without_query_feature"]
                + row["trials_without_candidate_feature"]) == len(ordinary), key
    assert table.loc["generic/efficientnet_lite0", "trials"] == len(ordinary)
    # The demo's random and generic trials have queries without a face: counted, listed.
    missing = pd.read_csv(out / "missing.csv")
    face_rows = table.loc["face/dlib_hog"]
    assert face_rows["trials_without_query_feature"] > 0
    assert (missing[(missing["feature_set"] == "face/dlib_hog") & (missing["role"] == "query")]
            ["trial"].nunique() == face_rows["trials_without_query_feature"])
    # Simulated people choose the true match 75 % of the time whatever the images: the
    # "always the true match" baseline beats the uniform one.
    g = table.loc["generic/efficientnet_lite0"]
    assert g["loglik_true_match"] > g["loglik_uniform"]
    page.goto((out / "index.html").as_uri())
    assert "Human answers as a benchmark: experiment demo" in page.locator("h1").inner_text()
    assert page.locator("table.t").count() == 2     # the ranking and the missing features
    assert page.eval_on_selector("img", "e => e.naturalWidth") > 0
    page.screenshot(path=str(artifacts_dir / "score_humans_demo.png"), full_page=True)


def test_a_feature_set_that_scores_no_trial_is_ranked_last_with_a_note(synthetic):
    """No image has a face: every trial is counted as missing, nothing crashes."""
    from types import SimpleNamespace

    from experiments.store import FaceSets
    doc = synthetic["doc"]
    ids = sorted({im["pair"] for im in doc["images"]})
    empty = FaceSets(np.zeros((0, 3), np.float32), np.zeros(len(ids) + 1, np.int64),
                     np.zeros((0, 4), np.int32))
    fs = SimpleNamespace(kind="face", key="face/dlib_none", ids=ids, left=empty, right=empty)
    answers = pd.read_csv(synthetic["answers"])
    answers = answers[answers["catch"] == 0]
    s = sh.score_feature_sets({"face/dlib_none": fs}, doc, answers)
    row = s.table.iloc[0]
    assert row["trials"] == 0 and row["trials_without_query_feature"] == N_TRIALS - 1
    assert math.isnan(row["loglik_heldout"]) and math.isnan(row["temperature"])
    assert (s.missing["role"] == "query").sum() == N_TRIALS - 1
    assert any("face/dlib_none: 0 scored trial(s)" in n for n in s.notes)


def test_every_column_has_a_trial_bootstrap_interval_around_it():
    rng = np.random.default_rng(0)
    d = rng.random((60, 5))
    p = np.exp(-d / 0.1)
    p /= p.sum(axis=1, keepdims=True)
    counts = np.stack([rng.multinomial(12, row) for row in p])
    true = np.where(rng.random(60) < 0.6, d.argmin(axis=1), rng.integers(0, 5, 60))
    s = sh.score_distances(d, counts, true, n_resamples=500)
    for col in ("nearest_is_majority", "nearest_is_true", "rank_corr", "loglik_heldout",
                "loglik_true_match_fitted", "loglik_ceiling"):
        assert s[f"{col}_low"] <= s[col] <= s[f"{col}_high"], col
        assert s[f"{col}_high"] - s[f"{col}_low"] > 0, col
    # the same seed, the same intervals
    assert sh.score_distances(d, counts, true, n_resamples=500)["rank_corr_low"] == \
        s["rank_corr_low"]


def test_true_match_baseline_with_a_fitted_epsilon_beats_uniform():
    # 60 % of answers on the true match: the fixed eps = 0.01 baseline scores below
    # uniform, the fitted one (eps = 0.4) above it
    counts = np.tile([6, 2, 1, 1, 0], (20, 1))
    true = np.zeros(20, dtype=int)
    s = sh.score_distances(np.random.default_rng(1).random((20, 5)), counts, true,
                           n_resamples=200)
    assert s["loglik_true_match"] < s["loglik_uniform"] < s["loglik_true_match_fitted"]
    assert s["epsilon_fitted"] == pytest.approx(0.4)
    # every trial alike: the eps fitted on other folds is 0.4 too
    assert s["loglik_true_match_fitted"] == pytest.approx(0.6 * math.log(0.6)
                                                          + 0.4 * math.log(0.1))


def test_noise_ceiling_by_hand():
    # leave one answer out, add one to each of the five candidates
    got = sh.noise_ceiling_per_trial(np.array([[3, 1, 0, 0, 0]]))
    assert got[0] == pytest.approx(3 * math.log(3 / 8) + math.log(1 / 8))


def test_one_definition_of_nearest_equals_majority():
    counts = np.array([[3, 3, 0, 0, 0], [0, 1, 4, 0, 0]])
    assert list(sh.nearest_majority_credit(np.array([0, 2]), counts)) == [0.5, 1.0]
    assert list(sh.nearest_majority_credit(np.array([2, 1]), counts)) == [0.0, 0.0]
