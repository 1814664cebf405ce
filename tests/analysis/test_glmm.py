"""The mixed model by maximum likelihood (lme4's glmer through Rscript): the random
structure the design identifies, terms named against their reference, non-estimable
terms dropped, singular fits shown, identical results for a seed, a clear error without
R or lme4, and an independent check against statsmodels' GEE."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis import glmm
from analysis.errors import AnalysisError


def _study(seed: int, trials: int = 80, per_trial: int = 15, sd: float = 0.8,
           effect: float = 1.0, one_answer_per_worker: bool = True) -> pd.DataFrame:
    """Trials alternate random/generic; a normal trial intercept of SD `sd`; each answer by
    its own worker, or `per_trial` workers who answer every trial."""
    rng = np.random.default_rng(seed)
    cond = np.where(np.arange(trials) % 2 == 1, "random", "generic")
    eta = 0.3 + effect * (cond == "random") + rng.normal(0, sd, trials)
    right = rng.random((trials, per_trial)) < 1 / (1 + np.exp(-eta[:, None]))
    workers = (np.arange(trials * per_trial) if one_answer_per_worker
               else np.tile(np.arange(per_trial), trials))
    return pd.DataFrame({"trial": np.repeat([f"t{i:03d}" for i in range(trials)], per_trial),
                         "participant": [f"w{i}" for i in workers], "subset": "TLL_d",
                         "condition": np.repeat(cond, per_trial), "population": "mturk",
                         "correct": right.ravel()})


def test_one_answer_per_worker_drops_the_participant_intercept_with_its_reason():
    res = glmm.fit_glmm(_study(0), intervals="profile")
    assert res.formula == "correct ~ cell + (1 | trial)"
    assert res.random_dropped == ["participant: each participant has one answer, so its "
                                  "intercept cannot be told apart from the answer's own noise"]
    assert any(line.startswith("Random intercept left out: participant") for line in res.notes())
    # the reference cell named in words, the term named against it
    assert res.reference == "cell TLL_d/random"
    assert list(res.effects["term"]) == ["intercept", "cell TLL_d/generic vs TLL_d/random"]
    row = res.effects.iloc[1]
    assert row["low"] < row["estimate"] < row["high"]
    # the profile interval is not the Wald interval, though close on this much data
    assert row["low"] != row["wald_low"] and abs(row["low"] - row["wald_low"]) < 0.1
    assert row["odds_ratio"] == pytest.approx(math.exp(row["estimate"]))
    assert list(res.variances["random intercept"]) == ["trial"]
    v = res.variances.iloc[0]
    assert v["low"] < v["sd"] < v["high"] and 0.4 < v["sd"] < 1.2


def test_crossed_design_keeps_both_intercepts():
    res = glmm.fit_glmm(_study(1, trials=30, per_trial=12, one_answer_per_worker=False),
                        intervals="wald")
    assert res.formula == "correct ~ cell + (1 | trial) + (1 | participant)"
    assert res.random_dropped == []
    assert set(res.variances["random intercept"]) == {"trial", "participant"}
    # Wald requested: the chosen interval is the Wald one
    assert (res.effects["low"] == res.effects["wald_low"]).all()


def test_a_term_the_data_cannot_estimate_is_dropped_and_listed():
    # lab answered only random trials: population and cell × population coincide
    a = _study(2, trials=40)
    lab = a[a["condition"] == "random"].assign(population="lab",
                                               participant=lambda d: "L" + d["participant"])
    res = glmm.fit_glmm(pd.concat([a, lab], ignore_index=True), intervals="wald")
    assert res.reference == "cell TLL_d/random, population lab"
    assert len(res.not_estimable) == 1 and "×" in res.not_estimable[0]
    assert res.not_estimable[0] not in set(res.effects["term"])
    assert any(line.startswith("Not estimable") for line in res.notes())
    assert res.effects["se"].notna().all() and (res.effects["se"] < 5).all()


def test_no_trial_spread_gives_a_singular_fit_that_is_said():
    # every trial exactly 8 of 16 right: the trial SD's maximum likelihood is 0
    rows = [{"trial": f"t{t}", "participant": f"w{t}_{j}", "subset": "TLL_d",
             "condition": "random", "population": "mturk", "correct": j < 8}
            for t in range(20) for j in range(16)]
    res = glmm.fit_glmm(pd.DataFrame(rows), intervals="wald")
    assert res.singular and res.variances.iloc[0]["sd"] < 1e-3
    assert any(line.startswith("Singular fit") for line in res.notes())


def test_a_fixed_seed_gives_identical_results():
    df = _study(3, trials=24, per_trial=8)
    one = glmm.fit_glmm(df, seed=7, intervals="boot", nsim=20)
    two = glmm.fit_glmm(df, seed=7, intervals="boot", nsim=20)
    other = glmm.fit_glmm(df, seed=8, intervals="boot", nsim=20)
    pd.testing.assert_frame_equal(one.effects, two.effects)
    pd.testing.assert_frame_equal(one.variances, two.variances)
    assert not one.effects["low"].equals(other.effects["low"])  # the seed is used
    assert one.interval_method.startswith("parametric bootstrap")


def test_missing_rscript_is_a_clear_error_naming_the_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("TLL_RSCRIPT", str(tmp_path / "no-such-Rscript"))
    with pytest.raises(AnalysisError, match="apt-get install -y r-base-core r-cran-lme4"):
        glmm.fit_glmm(_study(0, trials=6, per_trial=3))


def test_missing_lme4_is_a_clear_error_naming_the_package(monkeypatch, tmp_path):
    # R looks for packages only in this empty library
    monkeypatch.setenv("R_LIBS_SITE", str(tmp_path))
    monkeypatch.setenv("R_LIBS_USER", str(tmp_path))
    with pytest.raises(AnalysisError, match=r"missing R package: (jsonlite|lme4).*r-cran-lme4"):
        glmm.fit_glmm(_study(0, trials=6, per_trial=3))


def test_unknown_interval_method_is_refused():
    with pytest.raises(AnalysisError, match="unknown interval method"):
        glmm.fit_glmm(_study(0, trials=6, per_trial=3), intervals="bayes")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_glmm_agrees_with_gee_exchangeable_where_they_should(seed):
    """A random intercept for trial only (each answer by its own worker), SD 0.8.

    GEE (exchangeable within trial) estimates the population-averaged effect, glmer the
    trial-conditional one; for a logit with a normal intercept of SD s the two differ by
    the factor a = 1 / sqrt(1 + c² s²), c = 16 √3 / (15 π) (Zeger, Liang & Albert 1988).
    Asserted: glmer's estimate × a within 0.3 GEE standard errors of GEE's estimate (seeds
    0-7 gave 0.02-0.20), and glmer's SE within a factor 1.3 of GEE's robust SE, both raw
    and × a (seeds 0-7: 0.98-1.03 × a)."""
    df = _study(seed)
    res = glmm.fit_glmm(df, intervals="wald")
    b, se = res.effects.iloc[1][["estimate", "se"]]
    s = res.variances.iloc[0]["sd"]
    a = 1 / math.sqrt(1 + (16 * math.sqrt(3) / (15 * math.pi)) ** 2 * s * s)
    x = sm.add_constant((df["condition"] == "generic").astype(float).to_numpy())
    gee = sm.GEE(df["correct"].astype(float).to_numpy(), x, groups=df["trial"].to_numpy(),
                 family=sm.families.Binomial(),
                 cov_struct=sm.cov_struct.Exchangeable()).fit()
    assert abs(b * a - gee.params[1]) < 0.3 * gee.bse[1]
    assert 1 / 1.3 < se / gee.bse[1] < 1.3
    assert 1 / 1.3 < se * a / gee.bse[1] < 1.3


def test_the_report_without_r_stops_with_the_packages_to_install(monkeypatch, tmp_path,
                                                                 small_export, capsys):
    from analysis.cli import main
    monkeypatch.setenv("TLL_RSCRIPT", str(tmp_path / "no-such-Rscript"))
    assert main(["report", "--csv", str(small_export), "--out", str(tmp_path / "r"),
                 "--dpi", "50", "--bootstrap", "50"]) == 2
    err = capsys.readouterr().err
    assert "r-cran-lme4" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "report.html").exists()


def test_the_report_shows_the_model_its_reference_and_its_intervals(tmp_path, small_export):
    from analysis.cli import main
    out = tmp_path / "r"
    assert main(["report", "--csv", str(small_export), "--out", str(out), "--dpi", "50",
                 "--bootstrap", "50", "--model-intervals", "wald"]) == 0
    model = pd.read_csv(out / "mixed_model.csv")
    assert model["term"].iloc[0] == "intercept"
    assert {"estimate", "se", "wald_low", "wald_high", "low", "high"} <= set(model.columns)
    html = (out / "report.html").read_text()
    assert "Reference: cell TLL_obj/random, population lab" in html
    assert "maximum likelihood (Laplace), lme4" in html


def test_a_profile_past_its_time_limit_leaves_wald_intervals_and_says_so():
    res = glmm.fit_glmm(_study(4, trials=30, per_trial=10), intervals="profile",
                        profile_limit_s=0.001)
    # the limit is checked between parameters: the first may be profiled, not the rest
    assert res.effects["low"].isna().any() and res.effects["wald_low"].notna().all()
    assert any("profile intervals not computed" in w and "time limit" in w
               for w in res.warnings), res.warnings
