"""Smoke test of `python -m experiments demo` (what `make demo` runs before the server),
on a copy of the demo study so the features are already cached."""
from __future__ import annotations

import json
import shutil
from collections import Counter

import pandas as pd

from analysis.accuracy import POOLED, accuracy_long, accuracy_table
from tests.conftest import run_cli


def test_demo_pipeline_end_to_end(demo_study, demo_images, copy_study):
    from server.loader import read_experiment_file

    work = copy_study(demo_study)
    shutil.copytree(demo_images, work / "source")   # step 1 is skipped when present
    proc = run_cli("experiments", "demo", str(work))
    out = proc.stdout
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6"):
        assert step in out
    assert "kept" in out                            # the demo pairs were not rewritten
    assert "Table 1: recall@k (%) on subset TLL_d" in out
    assert "| efficientnet_lite0 | cosine |" in out
    for name in ("TLL_d", "TLL_obj", "TLL_obj_notebook", "TLL_obj_strict"):
        assert (work / "subsets" / f"{name}.json").is_file()
    assert (work / "evaluation" / "TLL_d" / "index.html").is_file()
    exp = work / "experiments" / "demo.json"
    doc = json.loads(exp.read_text())
    # the paper's design: six cells with the same number of trials, at least 5 each
    cells = Counter((t["subset"], t["condition"]) for t in doc["trials"])
    assert set(cells) == set(PAPER_CELLS)
    n = doc["design"]["conditions"][0]["count"]
    assert n >= 5 and set(cells.values()) == {n}
    assert f"the paper's design with {n} trials per cell" in out
    assert doc["design"]["name"] == "paper" and not any(t["catch"] for t in doc["trials"])
    assert len({t["pair"] for t in doc["trials"]}) == 6 * n          # no pair used twice
    # the largest the demo set allows: one more per cell is refused, cell by cell
    more = run_cli("experiments", "build", str(work), "--design", "paper", "--per-condition",
                   str(n + 1), "--seed", str(doc["seed"]), "--out", str(work / "more.json"),
                   check=False)
    assert more.returncode == 2 and "short by" in more.stderr
    assert more.stderr.count(f"{n + 1} needed") == 6
    _, root, problems = read_experiment_file(exp)
    assert problems == [] and root == work.resolve()
    # Same study and seed, same file (a rerun of the last step, without the features).
    run_cli("experiments", "build", str(work), "--design", "paper", "--per-condition", str(n),
            "--seed", str(doc["seed"]), "--out", str(exp.with_name("again.json")))
    assert exp.with_name("again.json").read_bytes() == exp.read_bytes()
    # The report's Table 2b has the paper's columns in the paper's order (then the pool).
    table = accuracy_table(accuracy_long(_answers(doc)))
    assert list(table.columns) == PAPER_CELLS + [POOLED]


PAPER_CELLS = [("TLL_obj", "random"), ("TLL_obj", "generic"), ("TLL_d", "random"),
               ("TLL_d", "face"), ("TLL_d", "face_generic"), ("TLL_d", "generic")]


def _answers(doc) -> pd.DataFrame:
    """One participant who always picks the first candidate, as analysis.load types it."""
    rows = [{"participant": "p1", "population": "lab", "trial": t["id"], "subset": t["subset"],
             "condition": t["condition"], "catch": False, "chosen_position": 1,
             "true_position": t["true_index"] + 1, "correct": t["true_index"] == 0}
            for t in doc["trials"]]
    return pd.DataFrame(rows)
