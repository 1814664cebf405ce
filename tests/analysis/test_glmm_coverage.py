"""Coverage of the mixed model's Wald 95 % intervals (estimate ± 1.96 SE, the `wald_low`/
`wald_high` columns of analysis/glmm.py) for its fixed effects, on 200 seeded studies.

Each study: 40 trials alternating two conditions (true log odds 0.3 and 0.3 + 1.0), a
normal trial intercept of SD 0.8, 10 answers per trial, each by its own worker, so the
model the report fits is y ~ intercept + condition + (1 | trial). All studies are fitted by
glmer in one Rscript process (analysis/r/glmm_batch.R), which keeps the test to seconds.
Passing band 0.92-0.98: 0.95 with about 2 binomial SDs (0.015) either side."""
from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd

from analysis import glmm

STUDIES, TRIALS, PER_TRIAL = 200, 40, 10
TRUTH = {"x1": 0.3, "x2": 1.0}  # intercept, condition effect (log odds)
SD_TRIAL = 0.8
BATCH_SCRIPT = glmm.R_SCRIPT.parent / "glmm_batch.R"


def _studies(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cond = (np.arange(TRIALS) % 2 == 1).astype(float)
    frames = []
    for s in range(STUDIES):
        eta = TRUTH["x1"] + TRUTH["x2"] * cond + rng.normal(0, SD_TRIAL, TRIALS)
        right = rng.random((TRIALS, PER_TRIAL)) < 1 / (1 + np.exp(-eta[:, None]))
        frames.append(pd.DataFrame({
            "study": s, "trial": np.repeat([f"t{i}" for i in range(TRIALS)], PER_TRIAL),
            "y": right.ravel().astype(int), "x1": 1.0, "x2": np.repeat(cond, PER_TRIAL)}))
    return pd.concat(frames, ignore_index=True)


def test_wald_intervals_of_the_fixed_effects_cover_the_truth(tmp_path):
    _studies(2024).to_csv(tmp_path / "in.csv", index=False)
    subprocess.run([glmm._rscript(), "--vanilla", str(BATCH_SCRIPT), str(tmp_path / "in.csv"),
                    str(tmp_path / "out.csv")], check=True, timeout=300)
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 2 * STUDIES and (out["n_trials"] == TRIALS).all()
    # the same interval the report prints in wald_low/wald_high
    low, high = out["estimate"] - glmm.Z95 * out["se"], out["estimate"] + glmm.Z95 * out["se"]
    hit = (low <= out["x"].map(TRUTH)) & (out["x"].map(TRUTH) <= high)
    coverage = hit.groupby(out["x"]).mean()
    assert ((coverage >= 0.92) & (coverage <= 0.98)).all(), coverage.to_dict()
    # a sensible design: the trial SD is estimated, not stuck at 0, in nearly every study
    assert out["singular"].mean() < 0.05


def test_the_batch_script_names_a_missing_package(tmp_path, monkeypatch):
    monkeypatch.setenv("R_LIBS_SITE", str(tmp_path))
    monkeypatch.setenv("R_LIBS_USER", str(tmp_path))
    (tmp_path / "in.csv").write_text("study,trial,y,x1\n")
    proc = subprocess.run([glmm._rscript(), "--vanilla", str(BATCH_SCRIPT),
                           str(tmp_path / "in.csv"), str(tmp_path / "out.csv")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "missing R package: lme4" in proc.stderr
