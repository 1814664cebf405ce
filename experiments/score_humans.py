"""Human answers as a benchmark for any feature set (`python -m experiments score-humans`).

The people of a finished experiment chose, for every trial, one of five candidates. Any
feature set in the study's store, including ones computed after the experiment was built,
can be scored against those choices on the experiment's own trials:

- ``nearest_is_majority``: the share of trials where the feature set's nearest candidate
  is the one most people chose (ties among the most chosen count as a fair coin: credit
  1 / number tied);
- ``nearest_is_true``: the share where its nearest candidate is the true match;
- ``rank_corr``: Spearman's rank correlation, within a trial, between the candidates'
  similarity (minus the distance) and their share of the votes, averaged over the trials
  where it is defined (``rank_corr_trials``);
- ``loglik_heldout``: the log-likelihood per answer of the people's choices under a
  softmax of negative distances, P(j) ∝ exp(-d_j / T), with one temperature T per feature
  set fitted by maximum likelihood on the other folds of a K-fold split over trials;
  beside it the uniform baseline (log 1/5) and "always the true match", which gives the
  true match 1 - ε and each other candidate ε / 4 (ε > 0 keeps it finite: one person
  choosing a distractor would otherwise make it -inf).

A trial is scored by a feature set when its query and all five candidates have a feature
(a face for the face kinds). Trials that are not are counted in the table and listed one
image per row in ``missing.csv``; the metrics of that feature set are on its scored trials.

The maths are pure numpy (and scipy's bounded scalar minimiser) on arrays; reading the
answers goes through the analysis package's loader, so which answers count is decided
by its rules. Nothing here imports the server.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import distance_sources as ds
from experiments import retrieval

N_CANDIDATES = 5
DEFAULT_FOLDS = 5
DEFAULT_EPSILON = 0.01
DEFAULT_RESAMPLES = 2000
# log T is searched within this many nats either side of the log of the typical spread
# of distances in a trial: T from 1e-4 to 1e4 times that spread.
LOG_T_HALF_WIDTH = 9.2


class ScoreError(Exception):
    """The answers and the experiment file do not fit together, or nothing can be scored."""


# --------------------------------------------------------------------------- the maths
def log_choice_probs(dist: np.ndarray, temperature: float) -> np.ndarray:
    """Return the ``T x 5`` log-probabilities of choosing each candidate under the
    softmax of negative distances at ``temperature`` (rows sum to 1 in probability)."""
    from scipy.special import log_softmax

    return log_softmax(-np.asarray(dist, dtype=np.float64) / temperature, axis=1)


def log_likelihood(dist: np.ndarray, counts: np.ndarray, temperature: float) -> float:
    """Return the total log-likelihood of the answer ``counts`` (``T x 5``, answers per
    candidate) under the softmax of negative distances at ``temperature``."""
    return float((np.asarray(counts, dtype=np.float64)
                  * log_choice_probs(dist, temperature)).sum())


def distance_scale(dist: np.ndarray) -> float:
    """Return the median spread (max - min) of the distances within a trial, over the
    trials where it is positive; 1.0 when no trial has any spread."""
    spread = np.ptp(np.asarray(dist, dtype=np.float64), axis=1)
    spread = spread[np.isfinite(spread) & (spread > 0)]
    return float(np.median(spread)) if len(spread) else 1.0


def fit_temperature(dist: np.ndarray, counts: np.ndarray) -> float:
    """Return the maximum-likelihood temperature of the softmax model for these trials
    (bounded scalar search on log T, see LOG_T_HALF_WIDTH); NaN when every trial's five
    distances are equal (then every T gives the uniform distribution)."""
    from scipy.optimize import minimize_scalar

    dist = np.asarray(dist, dtype=np.float64)
    if len(dist) == 0 or not (np.ptp(dist, axis=1) > 0).any():
        return math.nan
    centre = math.log(distance_scale(dist))
    # -loglik is convex in 1/T, hence unimodal in log T: Brent's bounded search finds it.
    res = minimize_scalar(lambda x: -log_likelihood(dist, counts, math.exp(x)),
                          bounds=(centre - LOG_T_HALF_WIDTH, centre + LOG_T_HALF_WIDTH),
                          method="bounded", options={"xatol": 1e-7})
    return float(math.exp(res.x))


def fold_of_trials(n_trials: int, folds: int, seed: int = 0) -> np.ndarray:
    """Return the fold (0..K-1) of each trial: a seeded shuffle cut into K nearly equal
    parts, K = min(folds, n_trials)."""
    k = max(1, min(int(folds), n_trials))
    perm = np.random.default_rng(seed).permutation(n_trials)
    fold = np.empty(n_trials, dtype=np.int64)
    fold[perm] = np.arange(n_trials) % k
    return fold


def heldout_log_likelihood(dist: np.ndarray, counts: np.ndarray, folds: int = DEFAULT_FOLDS,
                           seed: int = 0) -> tuple[float, list[float]]:
    """Return ``(total held-out log-likelihood, temperature fitted on each fold's
    complement)``: each trial's answers are scored at the temperature fitted on the
    trials of the other folds. Needs 2 trials or more (NaN otherwise); a fold whose
    complement has no spread in distances is scored at the uniform distribution."""
    per, temps = heldout_per_trial(dist, counts, folds, seed)
    return (float(per.sum()) if len(per) else math.nan), temps


def heldout_per_trial(dist: np.ndarray, counts: np.ndarray, folds: int = DEFAULT_FOLDS,
                      seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Return ``(per-trial held-out log-likelihood, fold temperatures)``: as
    heldout_log_likelihood, trial by trial (empty under 2 trials)."""
    dist = np.asarray(dist, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if len(dist) < 2:
        return np.zeros(0), []
    fold = fold_of_trials(len(dist), folds, seed)
    per, temps = np.zeros(len(dist)), []
    for f in range(fold.max() + 1):
        test = fold == f
        t = fit_temperature(dist[~test], counts[~test])
        temps.append(t)
        if math.isnan(t):
            per[test] = counts[test].sum(axis=1) * -math.log(N_CANDIDATES)
        else:
            per[test] = (counts[test] * log_choice_probs(dist[test], t)).sum(axis=1)
    return per, temps


def true_match_heldout_per_trial(counts: np.ndarray, true_index: np.ndarray,
                                 folds: int = DEFAULT_FOLDS, seed: int = 0
                                 ) -> tuple[np.ndarray, float]:
    """Return ``(per-trial held-out log-likelihood, epsilon fitted on all trials)`` of
    "the true match with a fitted epsilon": the true match 1 - eps, each other candidate
    eps / 4, eps the share of answers off the true match on the other folds (its maximum
    likelihood), kept inside [1e-6, 0.8] so that a fold without errors stays finite."""
    counts = np.asarray(counts, dtype=np.float64)
    rows = np.arange(len(counts))
    on = counts[rows, np.asarray(true_index, dtype=np.int64)]
    n = counts.sum(axis=1)
    if len(counts) < 2:
        return np.zeros(0), math.nan
    fold = fold_of_trials(len(counts), folds, seed)
    per = np.zeros(len(counts))
    for f in range(fold.max() + 1):
        test = fold == f
        eps = float(np.clip((n[~test] - on[~test]).sum() / max(n[~test].sum(), 1), 1e-6, 0.8))
        per[test] = on[test] * math.log(1 - eps) + (n[test] - on[test]) * math.log(
            eps / (N_CANDIDATES - 1))
    return per, float((n - on).sum() / n.sum()) if n.sum() else math.nan


def noise_ceiling_per_trial(counts: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Return each trial's log-likelihood of its answers when every answer is predicted by
    the other people's choices on that trial (leave one answer out, add-alpha smoothing
    over the five candidates): how well the people predict one another, the ceiling a
    feature set's held-out log-likelihood can be read against."""
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log((c - 1 + alpha) / (n - 1 + N_CANDIDATES * alpha))
        return np.where(c > 0, c * logp, 0.0).sum(axis=1)


def nearest_majority_credit(nearest: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return per trial whether candidate ``nearest`` is the people's most chosen one,
    with 1 / k credit when k candidates tie for most chosen: the project's one definition
    of "nearest = majority" (analysis.stats.majority_credit, also used by the analysis
    report's human-likeness table)."""
    from analysis.stats import majority_credit

    return majority_credit(nearest, counts)


def bootstrap_intervals(per_trial: dict[str, tuple[np.ndarray, np.ndarray]],
                        n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
                        ) -> dict[str, tuple[float, float]]:
    """Return 95 % percentile intervals, trials resampled with replacement, of ratios
    sum(x) / sum(w) given per trial as name -> (x, w): w = answers for per-answer
    measures, 1 for per-trial shares, "defined" for a mean over the trials where x is."""
    out = {}
    sizes = {len(x) for x, _ in per_trial.values()}
    if not sizes or max(sizes) < 2:
        return {k: (math.nan, math.nan) for k in per_trial}
    t = max(sizes)
    wts = np.random.default_rng(seed).multinomial(t, np.full(t, 1 / t), size=n_resamples)
    for name, (x, w) in per_trial.items():
        x = np.where(np.isfinite(x), x, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (wts @ x) / (wts @ np.asarray(w, dtype=np.float64))
        r = r[np.isfinite(r)]
        out[name] = (tuple(float(v) for v in np.quantile(r, [0.025, 0.975]))
                     if len(r) > 1 else (math.nan, math.nan))
    return out


def baseline_log_likelihoods(counts: np.ndarray, true_index: np.ndarray,
                             epsilon: float = DEFAULT_EPSILON) -> dict[str, float]:
    """Return the total log-likelihood of the answers under the two baselines:
    ``uniform`` (1/5 each) and ``true_match`` (1 - epsilon for the true match, epsilon/4
    for each other candidate)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    on_true = counts[np.arange(len(counts)), np.asarray(true_index, dtype=np.int64)].sum()
    return {"uniform": float(n * -math.log(N_CANDIDATES)),
            "true_match": float(on_true * math.log(1 - epsilon)
                                + (n - on_true) * math.log(epsilon / (N_CANDIDATES - 1)))}


def nearest_agreement(dist: np.ndarray, counts: np.ndarray, true_index: np.ndarray
                      ) -> tuple[float, float]:
    """Return ``(nearest_is_majority, nearest_is_true)``: the shares of trials whose
    nearest candidate (the first on equal distances, as the experiment file's machine
    choice) is the most chosen one (1 / k credit when k candidates tie for most chosen)
    and is the true match."""
    dist = np.asarray(dist, dtype=np.float64)
    counts = np.asarray(counts)
    if len(dist) == 0:
        return math.nan, math.nan
    nearest = np.argmin(dist, axis=1)
    majority = nearest_majority_credit(nearest, counts)
    return float(majority.mean()), float((nearest == np.asarray(true_index)).mean())


def rank_correlations(dist: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return Spearman's rho per trial between minus the distances and the vote counts
    of the five candidates (average ranks for ties); NaN where either is constant."""
    from scipy.stats import rankdata

    a = rankdata(-np.asarray(dist, dtype=np.float64), axis=1)
    b = rankdata(np.asarray(counts, dtype=np.float64), axis=1)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / den, np.nan)


def score_distances(dist: np.ndarray, counts: np.ndarray, true_index: np.ndarray,
                    folds: int = DEFAULT_FOLDS, seed: int = 0,
                    epsilon: float = DEFAULT_EPSILON,
                    n_resamples: int = DEFAULT_RESAMPLES) -> dict:
    """Return the scores of one feature set on its scored trials (``dist``, ``counts``
    and ``true_index`` row by row): trials, answers, nearest_is_majority,
    nearest_is_true, rank_corr, rank_corr_trials, temperature (fitted on all trials),
    fold_temperatures, and per answer loglik_heldout, loglik_fitted (in-sample),
    loglik_uniform, loglik_true_match (fixed epsilon), loglik_true_match_fitted (epsilon
    fitted on the other folds; ``epsilon_fitted`` on all trials), loglik_ceiling (the
    people predicting one another, noise_ceiling_per_trial); ``<column>_low`` and
    ``<column>_high`` the 95 % trial-bootstrap interval of each of them."""
    counts = np.asarray(counts, dtype=np.float64)
    dist = np.asarray(dist, dtype=np.float64)
    n = float(counts.sum())
    majority, true = nearest_agreement(dist, counts, true_index)
    rho = rank_correlations(dist, counts) if len(dist) else np.zeros(0)
    defined = rho[np.isfinite(rho)]
    temp = fit_temperature(dist, counts)
    held_t, temps = heldout_per_trial(dist, counts, folds, seed)
    held = float(held_t.sum()) if len(held_t) else math.nan
    fitted = (log_likelihood(dist, counts, temp) if not math.isnan(temp)
              else n * -math.log(N_CANDIDATES))
    base = baseline_log_likelihoods(counts, true_index, epsilon)
    eps_t, eps_hat = true_match_heldout_per_trial(counts, true_index, folds, seed)
    ceiling_t = noise_ceiling_per_trial(counts)
    per = (lambda x: x / n) if n else (lambda x: math.nan)
    answers_t = counts.sum(axis=1)
    nearest = np.argmin(dist, axis=1) if len(dist) else np.zeros(0, dtype=np.int64)
    ones = np.ones(len(dist))
    iv = bootstrap_intervals({
        "nearest_is_majority": (nearest_majority_credit(nearest, counts) if len(dist)
                                else ones, ones),
        "nearest_is_true": ((nearest == np.asarray(true_index)).astype(float), ones),
        "rank_corr": (rho, np.isfinite(rho).astype(float)),
        "loglik_heldout": (held_t if len(held_t) else ones * np.nan, answers_t),
        "loglik_true_match_fitted": (eps_t if len(eps_t) else ones * np.nan, answers_t),
        "loglik_ceiling": (ceiling_t, answers_t),
    }, n_resamples, seed)
    out = {"trials": len(dist), "answers": int(n),
           "nearest_is_majority": majority, "nearest_is_true": true,
           "rank_corr": float(defined.mean()) if len(defined) else math.nan,
           "rank_corr_trials": int(len(defined)), "temperature": temp,
           "fold_temperatures": temps, "loglik_heldout": per(held),
           "loglik_fitted": per(fitted), "loglik_uniform": per(base["uniform"]),
           "loglik_true_match": per(base["true_match"]),
           "loglik_true_match_fitted": per(float(eps_t.sum())) if len(eps_t) else math.nan,
           "epsilon_fitted": eps_hat,
           "loglik_ceiling": per(float(ceiling_t.sum()))}
    for name, (lo, hi) in iv.items():
        out[f"{name}_low"], out[f"{name}_high"] = lo, hi
    return out


# --------------------------------------------------------------------------- the trials
@dataclass
class HumanTrials:
    """The answered ordinary trials of an experiment: ``counts[t, j]`` people chose
    display position j of trial ``trials[t]``; query and candidate image ids; the
    experiment's trials nobody answered (after the counting rules)."""

    trials: list[str]
    counts: np.ndarray
    true_index: np.ndarray
    queries: list[str]
    candidates: list[list[str]]
    unanswered: list[str] = field(default_factory=list)


def human_trials(doc: dict, answers: pd.DataFrame) -> HumanTrials:
    """Return the answered trials of experiment document ``doc`` from the answers table
    (the analysis loader's columns, catch trials already left out). Raise ScoreError
    when an answer names a trial the file lacks or disagrees with it on the true match
    (answers of another experiment)."""
    by_id = {t["id"]: t for t in doc["trials"] if not t.get("catch")}
    answered = sorted(set(answers["trial"]))
    unknown = [t for t in answered if t not in by_id]
    if unknown:
        raise ScoreError(f"{len(unknown)} answered trial(s) are not ordinary trials of the "
                         f"experiment file (e.g. {', '.join(unknown[:3])}): are the answers "
                         "from this experiment?")
    counts = np.zeros((len(answered), N_CANDIDATES), dtype=np.int64)
    index = {t: i for i, t in enumerate(answered)}
    np.add.at(counts, (answers["trial"].map(index).to_numpy(),
                       answers["chosen_position"].to_numpy(dtype=np.int64) - 1), 1)
    true_index = np.array([by_id[t]["true_index"] for t in answered], dtype=np.int64)
    said = answers.drop_duplicates("trial").set_index("trial")["true_position"]
    wrong = [t for t in answered if int(said[t]) != by_id[t]["true_index"] + 1]
    if wrong:
        raise ScoreError(f"{len(wrong)} trial(s) have another true match in the answers than "
                         f"in the experiment file (e.g. {', '.join(wrong[:3])}): are the "
                         "answers from this experiment?")
    return HumanTrials(trials=answered, counts=counts, true_index=true_index,
                       queries=[by_id[t]["query"] for t in answered],
                       candidates=[list(by_id[t]["candidates"]) for t in answered],
                       unanswered=sorted(set(by_id) - set(answered)))


def candidate_distances(fs, trials: HumanTrials, images: dict[str, tuple[str, str]]
                        ) -> tuple[np.ndarray, list[dict]]:
    """Return ``(dist, missing)`` for feature set ``fs``: the ``T x 5`` distances of each
    trial's candidates to its query (the kind's metric; minimum over face pairs; +inf
    where an image has no feature) and one dict {trial, image, role} per image without a
    feature. ``images`` maps image id -> (pair, side)."""
    metric = ds.default_metric(fs.kind)
    pairs = sorted({images[i][0] for i in trials.queries + sum(trials.candidates, [])})
    row = dict(zip(pairs, ds.rows_for(fs, pairs)))

    def where(image: str) -> tuple[str, int]:
        pair, side = images[image]
        return side, int(row[pair])

    missing: list[dict] = []
    if fs.kind == "generic":
        def gather(ids):
            return np.stack([np.asarray(fs.side(s))[r] for s, r in map(where, ids)])
        q = gather(trials.queries)
        c = gather(sum(trials.candidates, [])).reshape(len(q), N_CANDIDATES, -1)
        if metric == "cosine":
            dist = 1.0 - np.einsum("td,tjd->tj", retrieval.unit_rows(q),
                                   retrieval.unit_rows(c.reshape(-1, c.shape[-1])).reshape(c.shape))
        else:
            dist = np.linalg.norm(c - q[:, None, :], axis=2)
        return dist.astype(np.float64), missing
    dist = np.full((len(trials.trials), N_CANDIDATES), np.inf)
    for t, (query, cands) in enumerate(zip(trials.queries, trials.candidates)):
        qv = ds.image_vectors(fs, *where(query))
        if len(qv) == 0:
            missing.append({"trial": trials.trials[t], "image": query, "role": "query"})
        for j, cand in enumerate(cands):
            cv = ds.image_vectors(fs, *where(cand))
            if len(cv) == 0:
                missing.append({"trial": trials.trials[t], "image": cand, "role": "candidate"})
            dist[t, j] = retrieval.set_distance(qv, cv, metric)
    return dist, missing


# --------------------------------------------------------------------------- a study
TABLE_COLUMNS = ["rank", "feature_set", "kind", "metric", "trials", "answers",
                 "trials_without_query_feature", "trials_without_candidate_feature",
                 "common_trials", "loglik_heldout_common",
                 "nearest_is_majority", "nearest_is_majority_low", "nearest_is_majority_high",
                 "nearest_is_true", "nearest_is_true_low", "nearest_is_true_high",
                 "rank_corr", "rank_corr_low", "rank_corr_high", "rank_corr_trials",
                 "temperature", "loglik_heldout", "loglik_heldout_low", "loglik_heldout_high",
                 "loglik_fitted", "loglik_uniform", "loglik_true_match",
                 "loglik_true_match_fitted", "loglik_true_match_fitted_low",
                 "loglik_true_match_fitted_high", "epsilon_fitted", "loglik_ceiling",
                 "loglik_ceiling_low", "loglik_ceiling_high"]
# A feature set that scores fewer than this share of the answered trials is ranked apart,
# so that it does not shrink the trials every other feature set is ranked on.
COMMON_SHARE = 0.5


@dataclass
class HumanScores:
    """What `score-humans` computed: the ranked table (one row per feature set), the
    images without features, the trials, the settings, and the files written."""

    experiment: str
    table: pd.DataFrame
    missing: pd.DataFrame
    trials: HumanTrials
    folds: int
    epsilon: float
    seed: int
    answers_total: int
    human_majority_true: float
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def score_feature_sets(feature_sets: dict, doc: dict, answers: pd.DataFrame,
                       folds: int = DEFAULT_FOLDS, seed: int = 0,
                       epsilon: float = DEFAULT_EPSILON, experiment: str = "") -> HumanScores:
    """Return the HumanScores of ``feature_sets`` (key -> FeatureSet) on the trials of
    experiment document ``doc`` answered in ``answers`` (loader columns, no catch
    trials), ranked by held-out log-likelihood per answer (best first)."""
    if not 0 < epsilon < 1:
        raise ScoreError(f"--epsilon must be between 0 and 1 (exclusive), got {epsilon}")
    if folds < 2:
        raise ScoreError(f"--folds must be 2 or more, got {folds}")
    trials = human_trials(doc, answers)
    if not trials.trials:
        raise ScoreError("no answers to ordinary trials: nothing to score")
    images = {im["id"]: (im["pair"], im["side"]) for im in doc["images"]}
    rows, missing, dists = [], [], {}
    for key in sorted(feature_sets):
        fs = feature_sets[key]
        dist, miss = candidate_distances(fs, trials, images)
        scored = np.isfinite(dist).all(axis=1)
        dists[key] = dist
        no_query = {m["trial"] for m in miss if m["role"] == "query"}
        no_cand = {m["trial"] for m in miss if m["role"] == "candidate"} - no_query
        s = score_distances(dist[scored], trials.counts[scored], trials.true_index[scored],
                            folds, seed, epsilon)
        s.pop("fold_temperatures")
        rows.append({"feature_set": key, "kind": fs.kind, "metric": ds.default_metric(fs.kind),
                     "trials_without_query_feature": len(no_query),
                     "trials_without_candidate_feature": len(no_cand), **s})
        missing += [{"feature_set": key, **m} for m in miss]
    table = pd.DataFrame(rows)
    # Rank on the trials every compared feature set scores, so that no feature set gains
    # from leaving hard trials out; one that scores too few is ranked apart.
    n_all = len(trials.trials)
    ranked = [k for k in sorted(dists)
              if np.isfinite(dists[k]).all(axis=1).sum() >= max(2, COMMON_SHARE * n_all)]
    common = np.ones(n_all, bool)
    for k in ranked:
        common &= np.isfinite(dists[k]).all(axis=1)
    table["common_trials"] = [int(common.sum()) if k in ranked else np.nan
                              for k in table["feature_set"]]
    loglik_common = {}
    for k in ranked:
        held, _ = heldout_log_likelihood(dists[k][common], trials.counts[common], folds, seed)
        answers_common = trials.counts[common].sum()
        loglik_common[k] = held / answers_common if answers_common else math.nan
    table["loglik_heldout_common"] = table["feature_set"].map(loglik_common)
    # NaN (ranked apart, or under two common trials) sorts last.
    table = table.sort_values(["loglik_heldout_common", "loglik_heldout", "feature_set"],
                              ascending=[False, False, True], na_position="last",
                              ignore_index=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table = table[TABLE_COLUMNS]
    counts = trials.counts
    notes = []
    apart = [k for k in table["feature_set"] if k not in ranked]
    if ranked:
        notes.append(f"ranked by held-out log-likelihood per answer on the {int(common.sum())} "
                     f"trial(s) every ranked feature set scores (loglik_heldout_common); the "
                     f"other columns are on each feature set's own scored trials")
    if apart:
        notes.append(f"ranked apart, after the others (scoring under {COMMON_SHARE:.0%} of the "
                     f"{n_all} answered trials): {', '.join(apart)}")
    for r in table.itertuples(index=False):
        if r.trials < 2:
            notes.append(f"feature set {r.feature_set}: {r.trials} scored trial(s); the "
                         "held-out log-likelihood needs 2 or more (ranked last)")
    if trials.unanswered:
        notes.append(f"{len(trials.unanswered)} ordinary trial(s) of the experiment have no "
                     f"counted answers and are not scored: {', '.join(trials.unanswered[:10])}"
                     + (" ..." if len(trials.unanswered) > 10 else ""))
    return HumanScores(
        experiment=experiment, table=table,
        missing=pd.DataFrame(missing, columns=["feature_set", "trial", "image", "role"]),
        trials=trials, folds=folds, epsilon=epsilon, seed=seed,
        answers_total=int(counts.sum()),
        human_majority_true=float(nearest_majority_credit(trials.true_index, counts).mean()),
        notes=notes)


def load_counted_answers(answers_csv: str | os.PathLike, name: str | None = None,
                         populations: list[str] | None = None):
    """Return ``(Answers, table of counted answers to ordinary trials)`` read by the
    analysis package's loader, whose rules decide which answers count."""
    from analysis.load import load_answers, require_answers

    answers = load_answers(csv=answers_csv, experiment=name, populations=populations)
    require_answers(answers)
    return answers, answers.without_catch()


def score_study(workdir: str | os.PathLike, experiment_path: str | os.PathLike,
                answers_csv: str | os.PathLike, keys: Sequence[str] | None = None,
                out: str | os.PathLike | None = None, folds: int = DEFAULT_FOLDS,
                seed: int = 0, epsilon: float = DEFAULT_EPSILON, name: str | None = None,
                populations: list[str] | None = None) -> HumanScores:
    """Score the feature sets ``keys`` (default: every one in the study's store) against
    the answers export ``answers_csv`` on the trials of ``experiment_path``; write the
    table, plot and page to ``out`` (default STUDY_DIR/evaluation/humans/<experiment
    file stem>/) and return the scores."""
    from experiments.experiment_file import read_experiment
    from experiments.store import FeatureStore

    doc = read_experiment(experiment_path)
    store = FeatureStore(workdir)
    available = store.keys()
    if keys:
        unknown = [k for k in keys if k not in available]
        if unknown:
            raise ScoreError("\n".join(
                f"feature set {k!r} is not in the store of {workdir} (available: "
                f"{', '.join(available) or 'none'})" for k in unknown))
    elif not available:
        raise ScoreError(f"the feature store of {workdir} is empty: run "
                         f"`{ds.features_command('generic/efficientnet_lite0', str(workdir))}`")
    answers, table = load_counted_answers(answers_csv, name, populations)
    fsets = {k: store.load(k) for k in (keys or available)}
    scores = score_feature_sets(fsets, doc, table, folds, seed, epsilon,
                                experiment=answers.experiment)
    manifest = Path(workdir) / "manifest.json"
    if manifest.is_file():
        import hashlib
        if hashlib.sha256(manifest.read_bytes()).hexdigest() != doc.get("manifest_sha256"):
            scores.notes.append("the study's manifest changed since the experiment file was "
                                "built: pairs are matched by id")
    write_scores(scores, out or Path(workdir) / "evaluation" / "humans" / Path(experiment_path).stem)
    return scores


# --------------------------------------------------------------------------- output
def _plot(scores: HumanScores, out: Path) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from analysis.plots import PALETTE, style

    t = scores.table.iloc[::-1]   # best at the top of a horizontal bar chart
    y = np.arange(len(t))

    def err(col):
        mid = t[col].to_numpy(float)
        return np.clip(np.vstack([mid - t[f"{col}_low"].to_numpy(float),
                                  t[f"{col}_high"].to_numpy(float) - mid]), 0, None)

    with style():
        fig = Figure(figsize=(7.16, 1.6 + 0.45 * max(len(t), 2)), layout="constrained")
        FigureCanvasAgg(fig)
        a, b = fig.subplots(1, 2, sharey=True)
        # Gains over the uniform baseline, so that longer bars are better and 0 is chance.
        uni = t["loglik_uniform"]
        a.barh(y, t["loglik_heldout"] - uni, xerr=err("loglik_heldout"), color=PALETTE[0],
               capsize=2, label="feature set, held out")
        a.axvline(0, color="k", lw=1, label="uniform (1/5 each)")
        a.errorbar(t["loglik_true_match_fitted"] - uni, y, xerr=err("loglik_true_match_fitted"),
                   fmt="x", color=PALETTE[5], capsize=2, label="true match, fitted ε")
        a.errorbar(t["loglik_ceiling"] - uni, y, xerr=err("loglik_ceiling"), fmt="|",
                   color=PALETTE[7], capsize=2, label="people predicting people")
        a.set(yticks=y, yticklabels=t["feature_set"],
              xlabel="log-likelihood per answer − uniform's (nats)", title="People's choices")
        a.legend(loc="lower left", bbox_to_anchor=(0, 1.08), frameon=False)
        b.barh(y - 0.2, 100 * t["nearest_is_majority"], height=0.4, color=PALETTE[1],
               xerr=100 * err("nearest_is_majority"), capsize=2, label="= people's majority")
        b.barh(y + 0.2, 100 * t["nearest_is_true"], height=0.4, color=PALETTE[2],
               xerr=100 * err("nearest_is_true"), capsize=2, label="= true match")
        b.axvline(100 / N_CANDIDATES, color="k", ls=":", lw=1, label="chance")
        b.set(xlabel="% of trials", xlim=(0, 100), title="Nearest candidate")
        b.legend(loc="lower left", bbox_to_anchor=(0, 1.08), frameon=False)
        files = [out / f"score_humans.{ext}" for ext in ("png", "pdf", "svg")]
        for f in files:
            fig.savefig(f, dpi=300, bbox_inches="tight")
    return files


def write_scores(scores: HumanScores, out: str | os.PathLike) -> list[Path]:
    """Write ``scores.csv`` / ``.md``, ``missing.csv``, ``per_trial.csv`` (the answers
    per candidate), the plot (300-dpi PNG, PDF and SVG) and ``index.html`` into ``out``;
    return them."""
    from experiments.evaluate import markdown_table
    from experiments.templates import render

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shown = scores.table.round(4)
    scores.table.to_csv(out / "scores.csv", index=False)
    (out / "scores.md").write_text(markdown_table(shown), encoding="utf-8")
    scores.missing.to_csv(out / "missing.csv", index=False)
    tr = scores.trials
    pd.DataFrame({"trial": tr.trials, "true_position": tr.true_index + 1,
                  **{f"count_{p + 1}": tr.counts[:, p] for p in range(N_CANDIDATES)}}
                 ).to_csv(out / "per_trial.csv", index=False)
    files = [out / n for n in ("scores.csv", "scores.md", "missing.csv", "per_trial.csv")]
    files += _plot(scores, out)
    missing_summary = None
    if len(scores.missing):
        missing_summary = (scores.missing.groupby(["feature_set", "role"])["trial"].nunique()
                           .unstack(fill_value=0).rename_axis(columns=None)
                           .rename(columns=lambda r: f"trials without a {r} feature")
                           .reset_index())
    (out / "index.html").write_text(render(
        "score_humans.html", s=scores, table=shown.to_html(index=False, border=0, classes="t"),
        missing=(missing_summary.to_html(index=False, border=0, classes="t")
                 if missing_summary is not None else None)), encoding="utf-8")
    files.append(out / "index.html")
    scores.files = files
    return files
